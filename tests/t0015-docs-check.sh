#!/bin/bash
# t0015-docs-check.sh - the man pages and the docs as a new user reads them:
# every page renders without a warning from groff or man, no markup runs
# two words together, the EXAMPLES show every command with options that
# command really has, the docs stand alone (nothing outside the repository,
# every docs/ file they name exists), and README and Makefile agree on how
# long make bench takes.
. tests/lib/test-lib.sh
requires groff man perl

dir=$(mk_tmpdir)
pages="docs/buoy.1 docs/buoy-ha.conf.5"

test_expect_success 'groff -ww and man --warnings find nothing to warn about in any page' '
    for p in $pages; do
        groff -ww -z -man "$p" >"$dir/groff.out" 2>&1 &&
        { test ! -s "$dir/groff.out" || { echo "$p:"; cat "$dir/groff.out"; false; }; } &&
        MANWIDTH=80 man --warnings -l "$p" >/dev/null 2>"$dir/man.err" &&
        { test ! -s "$dir/man.err" || { echo "$p:"; cat "$dir/man.err"; false; }; } || return 1
    done
'

# An alternating-font macro (.BI, .IR, ...) joins its arguments with no
# space: ".IR FILE : bytes written" renders "FILE:byteswritten".  Flag two
# arguments that meet letter to letter (a section number "(1)" after a name
# and an escape such as \(dq before a word are meant to touch).
cat >"$dir/glue.pl" <<'EOF'
my $bad = 0;
for my $f (@ARGV) {
    open my $fh, '<', $f or die "$f: $!";
    while (my $l = <$fh>) {
        next unless $l =~ /^\.(BI|IB|BR|RB|IR|RI)\s+(.*)$/;
        my ($rest, @a) = ($2);
        push @a, defined $2 ? $2 : $3 while $rest =~ /\G\s*("((?:[^"]|"")*)"|(\S+))/gc;
        for my $i (1 .. $#a) {
            next if $a[$i] =~ /^\(\d/ || $a[$i - 1] =~ /\\\(..$/;
            if ($a[$i - 1] =~ /[[:alnum:],;]$/ && $a[$i] =~ /^[[:alnum:]]/) {
                print "$f:$.: \"$a[$i - 1]\" and \"$a[$i]\" run together: $l";
                $bad = 1;
            }
        }
    }
}
exit $bad;
EOF

test_expect_success 'no font macro runs two words together' '
    perl "$dir/glue.pl" $pages
'

test_expect_success 'buoy(1) EXAMPLES show every command' '
    groff -man -Tascii -P-cbou docs/buoy.1 >"$dir/buoy.txt" 2>/dev/null &&
    sed -n "/^EXAMPLES/,/^SEE ALSO/p" "$dir/buoy.txt" >"$dir/examples" &&
    for c in create info mount umount stats serve gc snapshot clone delete passphrase store ha; do
        grep -q "^ *buoy $c " "$dir/examples" || { echo "EXAMPLES lack buoy $c"; return 1; }
    done
'

# Every example line "buoy CMD [VERB] ...", continuation lines joined: each
# option it uses is one that CMD's --help lists.
cat >"$dir/lines.pl" <<'EOF'
my $line = '';
while (<>) {
    s/^\s+//;
    $line .= $_;
    next if $line =~ s/\\\n$/ /;
    print $line if $line =~ /^buoy /;
    $line = '';
}
EOF

test_expect_success 'every option an example uses is one its command lists in --help' '
    perl "$dir/lines.pl" "$dir/examples" >"$dir/lines" &&
    test -s "$dir/lines" &&
    while read -r _ cmd verb rest; do
        case $cmd in
        store | ha) help=$("$BUOY" "$cmd" "$verb" --help) ;;
        *) help=$("$BUOY" "$cmd" --help) && rest="$verb $rest" ;;
        esac || { echo "no --help for buoy $cmd $verb"; return 1; }
        for w in $rest; do
            case $w in
            --*) o="${w%%=*} " ;;
            -[a-z]) o="$w," ;;
            *) continue ;;
            esac
            case $help in
            *" $o"*) ;;
            *) echo "example \"buoy $cmd $verb $rest\": ${o% } is not in its --help"; return 1 ;;
            esac
        done
    done <"$dir/lines"
'

test_expect_success 'no example hard-codes a loop device that losetup picks' '
    ! grep -n "/dev/loop[0-9]" docs/buoy.1 README.md
'

test_expect_success 'buoy-ha.conf(5): a volume resource says what start, stop and status do' '
    groff -man -Tascii -P-cbou docs/buoy-ha.conf.5 >"$dir/conf.txt" 2>/dev/null &&
    sed -n "/^       volume /,/^       fsmount/p" "$dir/conf.txt" >"$dir/volume" &&
    tr -s " \n" "  " <"$dir/volume" >"$dir/volume1" &&
    grep -q "start runs buoy mount URL MOUNTPOINT --takeover" "$dir/volume1" &&
    grep -q "stop runs buoy umount MOUNTPOINT, and status is whether MOUNTPOINT is a mount point" "$dir/volume1"
'

test_expect_success 'README and docs/ never point outside the repository' '
    ! grep -n -e "\.\./shared" -e "shared/DESIGN" -e "shared/STYLE" README.md docs/*
'

test_expect_success 'every docs/ file that README and docs/ name exists' '
    grep -o -h "docs/[A-Za-z0-9_.-]*[A-Za-z0-9]" README.md docs/* >"$dir/named" &&
    sort -u "$dir/named" >"$dir/names" &&
    grep -q "docs/DESIGN.md" "$dir/names" &&
    grep -q "docs/CONTRIBUTING.md" "$dir/names" &&
    while read -r f; do
        test -e "$f" || { echo "$f is named but does not exist"; return 1; }
    done <"$dir/names"
'

test_expect_success 'README and the Makefile give make bench the same duration' '
    sed -n "s/.*make bench.*about \([0-9][0-9]*\) minutes.*/\1/p" README.md >"$dir/readme.min" &&
    sed -n "s/^#  *about \([0-9][0-9]*\) minutes.*/\1/p" Makefile >"$dir/make.min" &&
    test -s "$dir/readme.min" &&
    test "$(cat "$dir/readme.min")" = "$(cat "$dir/make.min")"
'

test_done
