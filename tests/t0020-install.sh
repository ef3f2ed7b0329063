#!/bin/bash
# t0020-install.sh - make install and make uninstall: into DESTDIR the binary,
# the nbdkit plugin, the man pages and the systemd units; the installed buoy
# serves a volume with the installed plugin, man finds and renders the
# installed pages, the units run the installed binary; uninstall leaves no
# file behind.  It installs the build under test ($BUOY_OUT), so it rebuilds
# nothing.
. tests/lib/test-lib.sh
requires make nbdkit qemu-img man groff

case $(basename "$BUOY_OUT") in
build-asan) mode=asan ;;
build) mode=release ;;
*) skip_all "BUOY_OUT=$BUOY_OUT is neither build nor build-asan" ;;
esac
[ -f "$BUOY_OUT/nbdkit-buoy-plugin.so" ] ||
    skip_all "no $BUOY_OUT/nbdkit-buoy-plugin.so (run make MODE=$mode all)"

dir=$(mk_tmpdir)
root=$dir/root
usr=$root/usr/local

# What make install must write, and nothing else.
cat >"$dir/want" <<EOF
$usr/bin/buoy
$usr/lib/buoy/nbdkit-buoy-plugin.so
$usr/lib/systemd/system/buoy-ha.service
$usr/lib/systemd/system/buoy-serve@.service
$usr/lib/systemd/system/buoy-volume@.service
$usr/share/man/man1/buoy.1
$usr/share/man/man5/buoy-ha.conf.5
EOF

test_expect_success 'make install DESTDIR PREFIX=/usr/local writes the binary, plugin, pages and units' '
    make -s -C "$TEST_TOP" MODE=$mode install DESTDIR="$root" PREFIX=/usr/local >"$dir/make.out" &&
    find "$root" ! -type d >"$dir/unsorted" &&
    sort "$dir/unsorted" >"$dir/got" &&
    diff -u "$dir/want" "$dir/got" &&
    test -x "$usr/bin/buoy" &&
    cmp "$BUOY" "$usr/bin/buoy" &&
    cmp "$BUOY_OUT/nbdkit-buoy-plugin.so" "$usr/lib/buoy/nbdkit-buoy-plugin.so" &&
    cmp docs/buoy.1 "$usr/share/man/man1/buoy.1"
'

test_expect_success 'the installed buoy serves a volume with the installed plugin' '
    mkdir "$dir/store" &&
    "$usr/bin/buoy" create "$dir/store/vol" --size 96M &&
    "$usr/bin/buoy" serve -r "$dir/store/vol" --socket "$dir/v.sock" --cache-dir "$dir/cache" \
        --run "qemu-img info --output=json \"\$uri\"" >"$dir/info" &&
    grep -q "\"virtual-size\": 100663296" "$dir/info"
'

test_expect_success 'without the installed plugin, serve names where it looked' '
    mv "$usr/lib/buoy/nbdkit-buoy-plugin.so" "$dir/plugin.so" &&
    test_when_finished "mv \"$dir/plugin.so\" \"$usr/lib/buoy/nbdkit-buoy-plugin.so\"" &&
    test_expect_code 1 "$usr/bin/buoy" serve -r "$dir/store/vol" --socket "$dir/v.sock" \
        --cache-dir "$dir/cache" --run true 2>"$dir/err" &&
    grep -q "$usr/bin/../lib/buoy/nbdkit-buoy-plugin.so" "$dir/err"
'

test_expect_success 'buoy --help says man buoy, and man finds and renders the installed pages' '
    "$usr/bin/buoy" --help >"$dir/help" &&
    grep -q "man buoy" "$dir/help" &&
    MANPATH=$usr/share/man man -w buoy >"$dir/where" &&
    test "$(cat "$dir/where")" = "$usr/share/man/man1/buoy.1" &&
    MANPATH=$usr/share/man man -w buoy-ha.conf >"$dir/where" &&
    test "$(cat "$dir/where")" = "$usr/share/man/man5/buoy-ha.conf.5" &&
    MANWIDTH=80 man -l "$usr/share/man/man1/buoy.1" >"$dir/buoy.txt" 2>"$dir/man.err" &&
    grep -q "^SYNOPSIS" "$dir/buoy.txt" && test ! -s "$dir/man.err" &&
    MANWIDTH=80 man -l "$usr/share/man/man5/buoy-ha.conf.5" >"$dir/conf.txt" 2>"$dir/man.err" &&
    grep -q "^RESOURCES" "$dir/conf.txt" && test ! -s "$dir/man.err"
'

test_expect_success 'the installed units run the installed buoy' '
    for u in buoy-ha.service buoy-serve@.service buoy-volume@.service; do
        grep "^Exec" "$usr/lib/systemd/system/$u" >"$dir/exec" &&
        grep -q "^ExecStart=/usr/local/bin/buoy " "$dir/exec" &&
        ! grep -v -e "=/usr/local/bin/buoy " -e "=/bin/mkdir " -e "^ExecReload=/bin/kill -HUP \$MAINPID$" \
            "$dir/exec" || return 1
    done
'

test_expect_success 'with another PREFIX the units name that binary, and uninstall undoes it' '
    make -s -C "$TEST_TOP" MODE=$mode install DESTDIR="$dir/opt" PREFIX=/opt/buoy >"$dir/make.out" &&
    grep -q "^ExecStart=/opt/buoy/bin/buoy serve " "$dir/opt/opt/buoy/lib/systemd/system/buoy-serve@.service" &&
    grep -q "^ExecStop=/opt/buoy/bin/buoy umount " "$dir/opt/opt/buoy/lib/systemd/system/buoy-volume@.service" &&
    ! grep -q /usr/local "$dir/opt/opt/buoy/lib/systemd/system/buoy-volume@.service" &&
    grep -q "^ExecStart=/opt/buoy/bin/buoy ha run " "$dir/opt/opt/buoy/lib/systemd/system/buoy-ha.service" &&
    ! grep -q /usr/local "$dir/opt/opt/buoy/lib/systemd/system/buoy-ha.service" &&
    make -s -C "$TEST_TOP" MODE=$mode uninstall DESTDIR="$dir/opt" PREFIX=/opt/buoy >"$dir/make.out" &&
    find "$dir/opt" ! -type d >"$dir/left" &&
    test ! -s "$dir/left"
'

test_expect_success 'make uninstall removes every file make install wrote' '
    echo "not ours" >"$usr/bin/other" &&
    make -s -C "$TEST_TOP" MODE=$mode uninstall DESTDIR="$root" PREFIX=/usr/local >"$dir/make.out" &&
    find "$root" ! -type d >"$dir/left" &&
    test "$(cat "$dir/left")" = "$usr/bin/other" &&
    test ! -e "$usr/lib/buoy"
'

test_done
