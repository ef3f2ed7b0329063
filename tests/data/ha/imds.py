# imds.py ADDR PORT INSTANCE_ID - the EC2 instance metadata service of one
# test "instance" (a node namespace): IMDSv2 (PUT /latest/api/token, then GET
# with X-aws-ec2-metadata-token) and the IMDSv1 GET the 2010 elastic-ip script
# does; only /latest/meta-data/instance-id.  moto's own metadata service
# answers i-fake for every caller, so each node gets one of these.
import http.server, sys

addr, port, iid = sys.argv[1], int(sys.argv[2]), sys.argv[3]
TOKEN = "buoy-test-token"

class H(http.server.BaseHTTPRequestHandler):
    def reply(self, code, body):
        b = body.encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
    def do_PUT(self):
        if self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            self.reply(200, TOKEN)
        else:
            self.reply(400, "bad token request")
    def do_GET(self):
        tok = self.headers.get("X-aws-ec2-metadata-token")
        if tok is not None and tok != TOKEN:
            self.reply(401, "bad token")
        elif self.path == "/latest/meta-data/instance-id":
            self.reply(200, iid)
        elif self.path == "/":
            self.reply(200, "latest")
        else:
            self.reply(404, "not here")
    def log_message(self, *a):
        pass

http.server.HTTPServer((addr, port), H).serve_forever()
