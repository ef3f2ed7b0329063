/* cmd_version.c - "buoy version": buoy's version and its libraries'. */
#include "commands.h"

#include <curl/curl.h>
#include <expat.h>
#include <json-c/json_c_version.h>
#include <openssl/crypto.h>
#include <stdio.h>

#ifndef BUOY_VERSION
#define BUOY_VERSION "0.1.0"
#endif

int cmd_version(struct cli_opts *o, int argc, char **argv)
{
    printf("buoy %s\n", BUOY_VERSION);
    printf("  %s\n", curl_version());
    printf("  %s\n", OpenSSL_version(OPENSSL_VERSION));
    printf("  %s\n", XML_ExpatVersion());
    printf("  json-c %s\n", json_c_version());
    return EXIT_OK;
}
