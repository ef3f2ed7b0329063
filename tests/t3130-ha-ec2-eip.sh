#!/bin/bash
# t3130-ha-ec2-eip.sh - Elastic IPs in moto's EC2 API: two instances, two
# addresses.  One address is the built-in ec2-eip resource (DescribeAddresses,
# AssociateAddress, DisassociateAddress signed by our SigV4; the instance id
# from IMDSv2), the other is the seed's 2010 elastic-ip script run unchanged
# by the exec resource (with a stand-in for Tim Kay's aws tool, which Debian
# does not have).  Each node namespace has its own metadata service at
# 169.254.169.254 on its loopback.  After kill -9 of the active node both
# addresses are associated with the survivor's instance.  moto runs with IAM
# authentication on, so it checks the SigV4 signature of every EC2 and S3
# request buoy sends.
. tests/lib/test-lib.sh
. tests/lib/ha-lib.sh
HA_MOTO_AUTH=1

ha_net_setup 2

ec2() {
    ha_in client curl -sS -f --max-time 10 --aws-sigv4 aws:amz:us-east-1:ec2 \
        --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" "$HA_STORE_EP/" --data "Version=2016-11-15&$1"
}
xml_first() { grep -o "<$1>[^<]*</$1>" | head -n 1 | sed "s/<[^>]*>//g"; }
# owner IP: the instance the address is associated with ("" when none)
owner() {
    ec2 "Action=DescribeAddresses&PublicIp.1=$1" >"$HA_DIR/desc.xml" &&
        tr -d '\n' <"$HA_DIR/desc.xml" | sed -n 's/.*<instanceId>\([^<]*\)<\/instanceId>.*/\1/p'
}

test_expect_success 'moto: two instances and two Elastic IPs; a bad signature is refused' '
    ha_start_store &&
    ec2 "Action=DescribeImages" >"$HA_DIR/img.xml" &&
    ami=$(xml_first imageId <"$HA_DIR/img.xml") && test -n "$ami" &&
    for k in 1 2; do
        ec2 "Action=RunInstances&ImageId=$ami&MinCount=1&MaxCount=1&InstanceType=t3.micro" >"$HA_DIR/run$k.xml" &&
        eval "inst$k=\$(xml_first instanceId <\"$HA_DIR/run$k.xml\")" || return 1
    done &&
    test -n "$inst1" && test -n "$inst2" && test "$inst1" != "$inst2" &&
    ec2 "Action=AllocateAddress&Domain=vpc" >"$HA_DIR/a1.xml" &&
    ec2 "Action=AllocateAddress&Domain=vpc" >"$HA_DIR/a2.xml" &&
    eip1=$(xml_first publicIp <"$HA_DIR/a1.xml") && eip2=$(xml_first publicIp <"$HA_DIR/a2.xml") &&
    test -n "$eip1" && test -n "$eip2" &&
    echo "instances $inst1 $inst2, addresses $eip1 $eip2" &&
    test -z "$(owner $eip1)" &&
    test_must_fail ha_in client curl -sS -f --max-time 10 --aws-sigv4 aws:amz:us-east-1:ec2 \
        --user "$AWS_ACCESS_KEY_ID:not-the-secret" "$HA_STORE_EP/" \
        --data "Version=2016-11-15&Action=DescribeAddresses"
'

mkdir -p "$HA_DIR/bin" && ln -s "$TEST_TOP/tests/data/ha/aws-timkay" "$HA_DIR/bin/aws"

test_expect_success 'each node: its metadata service, ~/.awssecret, a configuration' '
    for k in 1 2; do
        eval "id=\$inst$k" &&
        ip -n $(ha_ns $k) addr add 169.254.169.254/32 dev lo &&
        start_daemon imds$k ip netns exec $(ha_ns $k) "$PYTHON" tests/data/ha/imds.py 169.254.169.254 80 "$id" &&
        mkdir -p "$HA_DIR/home$k" &&
        printf "%s\n%s\n" "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" >"$HA_DIR/home$k/.awssecret" &&
        ha_conf $k "$HA_DIR/n$k.conf" <<EOF || return 1
preferred n1
resource eip ec2-eip $eip1 endpoint=$HA_STORE_EP region=us-east-1
resource seed exec env ELASTIC_IP=$eip2 $TEST_TOP/tests/data/ha/elastic-ip running="I have"
EOF
    done &&
    for k in 1 2; do
        for i in $(seq 1 100); do
            ha_in $k curl -s -o /dev/null --max-time 1 http://169.254.169.254/ && break
            sleep 0.1
        done
    done
'

start_node() {
    start_daemon "ha$1" ip netns exec "$(ha_ns "$1")" env -u AWS_EC2_METADATA_DISABLED \
        HOME="$HA_DIR/home$1" PATH="$HA_DIR/bin:$PATH" AWS_EC2_ENDPOINT="$HA_STORE_EP" \
        "$BUOY" ha run -c "$HA_DIR/n$1.conf"
}

test_expect_success 'n1 becomes active: both addresses are associated with its instance' '
    start_node 1 && start_node 2 &&
    ha_wait_state 1 active 30 && ha_wait_state 2 standby 10 &&
    test "$(owner $eip1)" = "$inst1" &&
    test "$(owner $eip2)" = "$inst1" &&
    ha_status 1 &&
    grep -q "^resource eip kind ec2-eip state running" "$HA_DIR/status1" &&
    grep -q "^resource seed kind exec state running" "$HA_DIR/status1"
'

test_expect_success 'kill -9 n1: both addresses move to the survivor'"'"'s instance' '
    t0=$(date +%s%N) &&
    ha_kill 1 &&
    ha_wait_state 2 active 30 &&
    t1=$(date +%s%N) &&
    echo "eip_takeover_ms $(( (t1 - t0) / 1000000 ))" | tee "$HA_DIR/takeover" &&
    test "$(owner $eip1)" = "$inst2" &&
    test "$(owner $eip2)" = "$inst2"
'
say "$(cat "$HA_DIR/takeover" 2>/dev/null)"

test_expect_success 'SIGTERM on n2: it lets both addresses go' '
    stop_daemon ha2 &&
    test -z "$(owner $eip1)" &&
    test -z "$(owner $eip2)"
'

test_expect_success 'no instance id at all: the start fails with a clear error, and nothing is associated' '
    ha_conf 2 "$HA_DIR/n2b.conf" <<EOF &&
resource eip ec2-eip $eip1 endpoint=$HA_STORE_EP region=us-east-1
EOF
    stop_daemon imds2 &&
    start_daemon ha2b ip netns exec $(ha_ns 2) env -u AWS_EC2_METADATA_DISABLED \
        "$BUOY" ha run -c "$HA_DIR/n2b.conf" &&
    for i in $(seq 1 200); do
        grep -q "did not start" "$TEST_OUT/daemons/ha2b.log" && break
        sleep 0.1
    done &&
    grep -q "ec2-eip $eip1: no instance=ID and EC2 metadata service" "$TEST_OUT/daemons/ha2b.log" &&
    test -z "$(owner $eip1)"
'

test_done
