/* ha_status.c - `buoy ha status --json`: what the text status says (node,
 * lease, peers, resources, checks, packets), as one JSON object for
 * programs.  Built with json-c on the daemon's main thread, which owns the
 * state machine and the peers; the lease view, resources and checks are
 * copied under d->mu as the text status does.
 *
 *   {"node": {"name", "state", "for_ms", "claims", "flags": [..], "reason"},
 *    "lease": {"key", "state": "unknown|none|released|held", "holder"
 *              (null when none), "epoch", "ours", "left_ms"},
 *    "peers": [{"name", "addr", "port", "state" ("unknown" never heard),
 *               "heard_ms_ago" (null never), "alive", "flags": [..]}],
 *    "resources": [{"name", "kind", "state", "may_run", "starts", "stops",
 *                   "last"}],
 *    "checks": [{"name", "kind", "state": "idle|up|down", "runs",
 *                "failures", "restarts", "restarts_max", "last"}],
 *    "packets": {"sent", "accepted", "short", ... one per drop reason}}
 *
 * Times are milliseconds by this node's monotonic clock; flags are
 * "standby", "takeover", "hold". */
#include "ha_daemon.h"
#include "util/clock.h"

#include <json-c/json.h>
#include <string.h>

static json_object *flags_json(uint8_t f)
{
    json_object *a = json_object_new_array();
    if (f & HB_F_STANDBY)
        json_object_array_add(a, json_object_new_string("standby"));
    if (f & HB_F_TAKEOVER)
        json_object_array_add(a, json_object_new_string("takeover"));
    if (f & HB_F_HOLD)
        json_object_array_add(a, json_object_new_string("hold"));
    return a;
}

static void put(json_object *o, const char *k, json_object *v)
{
    json_object_object_add(o, k, v);
}

static json_object *num(uint64_t v)
{
    return json_object_new_int64((int64_t)v);
}

static json_object *str(const char *s)
{
    return json_object_new_string(s ? s : "");
}

void ha_status_json(struct ha_daemon *d, struct buf *out)
{
    uint64_t now = clock_mono_ms();
    json_object *root = json_object_new_object();

    json_object *node = json_object_new_object();
    put(node, "name", str(d->conf.node));
    put(node, "state", str(ha_state_name(d->sm.state)));
    put(node, "for_ms", num(now - d->sm.since_ms));
    put(node, "claims", num(d->sm.claims));
    put(node, "flags", flags_json(ha_sm_flags(&d->sm, now)));
    put(node, "reason", str(d->sm.reason));
    put(root, "node", node);

    pthread_mutex_lock(&d->mu);
    struct ha_lease_view lv = d->lv;
    pthread_mutex_unlock(&d->mu);
    int valid = lv.held && now + d->conf.lease_margin_ms < lv.deadline_ms;
    json_object *lease = json_object_new_object();
    put(lease, "key", str(d->conf.lease_key));
    put(lease, "state", str(!lv.seen          ? "unknown"
                            : !lv.exists      ? "none"
                            : lv.cur.released ? "released"
                                              : "held"));
    put(lease, "holder", lv.exists ? str(lv.cur.holder) : NULL);
    put(lease, "epoch", num(lv.exists ? lv.cur.epoch : 0));
    put(lease, "ours", json_object_new_boolean(valid));
    put(lease, "left_ms", num(valid ? lv.deadline_ms - now : 0));
    put(root, "lease", lease);

    json_object *peers = json_object_new_array();
    for (int i = 0; i < d->conf.npeers; i++) {
        struct ha_peer_state *p = &d->peers[i];
        json_object *po = json_object_new_object();
        put(po, "name", str(p->view.name));
        put(po, "addr", str(d->conf.peers[i].addr));
        put(po, "port", num(d->conf.peers[i].port));
        put(po, "state", str(p->view.heard ? ha_state_name(p->view.state) : "unknown"));
        put(po, "heard_ms_ago", p->view.heard ? num(now - p->last_ms) : NULL);
        put(po, "alive", json_object_new_boolean(p->view.alive));
        put(po, "flags", flags_json(p->view.flags));
        json_object_array_add(peers, po);
    }
    put(root, "peers", peers);

    json_object *res = json_object_new_array(), *checks = json_object_new_array();
    pthread_mutex_lock(&d->mu); /* the worker publishes these under it (ha_work.c) */
    for (int i = 0; i < d->conf.nres; i++) {
        const struct res *r = &d->res[i];
        json_object *ro = json_object_new_object();
        put(ro, "name", str(r->item->name));
        put(ro, "kind", str(r->item->kind));
        put(ro, "state", str(res_state_name(r->state)));
        put(ro, "may_run", json_object_new_boolean(r->may_run));
        put(ro, "starts", num(r->starts));
        put(ro, "stops", num(r->stops));
        put(ro, "last", str(r->last));
        json_object_array_add(res, ro);
    }
    for (int i = 0; i < d->conf.nchecks; i++) {
        const struct check *c = &d->checks[i];
        json_object *co = json_object_new_object();
        put(co, "name", str(c->item->name));
        put(co, "kind", str(c->item->kind));
        put(co, "state", str(d->sm.state != HA_ACTIVE ? "idle" : c->up ? "up" : "down"));
        put(co, "runs", num(c->runs));
        put(co, "failures", num(c->failures));
        put(co, "restarts", num((uint64_t)c->restarts));
        put(co, "restarts_max", num((uint64_t)c->restarts_max));
        put(co, "last", str(c->last));
        json_object_array_add(checks, co);
    }
    pthread_mutex_unlock(&d->mu);
    put(root, "resources", res);
    put(root, "checks", checks);

    json_object *pk = json_object_new_object();
    put(pk, "sent", num(d->sent));
    for (int i = 0; i < HB_NDROP; i++)
        put(pk, hb_drop_name((enum hb_drop)i), num(d->drops[i]));
    put(root, "packets", pk);

    buf_puts(out, json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
                                                           JSON_C_TO_STRING_NOSLASHESCAPE));
    buf_puts(out, "\n");
    json_object_put(root);
}
