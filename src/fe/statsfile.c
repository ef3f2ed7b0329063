/* statsfile.c - a volume's statistics as "name value" lines (statsfile.h). */
#include "statsfile.h"

#include <inttypes.h>
#include <stdio.h>

void statsfile_format(struct vol *v, const char *url, int pid, struct buf *out)
{
    struct vol_stats st;
    vol_get_stats(v, &st);
    const struct store_stats *s = &st.store;
#define U(name, val) buf_printf(out, "%s %" PRIu64 "\n", name, (uint64_t)(val))
    buf_printf(out, "buoy_stats 1\n");
    buf_printf(out, "url %s\n", url);
    U("pid", pid);
    U("size_bytes", vol_size(v));
    U("block_size_bytes", vol_block_size(v));
    U("stale", st.stale);
    U("error", st.error);
    U("read_errors", st.read_errors);
    U("checksum_errors", st.checksum_errors);
    if (st.error) { /* one line: what went wrong */
        char why[600];
        snprintf(why, sizeof why, "%s", vol_error(v));
        for (char *c = why; *c; c++)
            if (*c == '\n' || *c == '\r')
                *c = ' ';
        buf_printf(out, "error_reason %s\n", why);
    }
    U("unsaved", st.unsaved);
    U("unsaved_bytes", st.unsaved_bytes);
    buf_printf(out, "unsaved_since %" PRId64 "\n", st.unsaved_since);
    U("unsaved_in_journal", st.unsaved_in_journal);
    U("journal_lost", st.journal_lost);
    U("lease_lost", st.lease_lost);
    buf_printf(out, "journal_dir %s\n", vol_journal_dir(v));
    if (st.error) {
        char note[1200];
        vol_unsaved_note(&st, vol_journal_dir(v), note, sizeof note);
        buf_printf(out, "unsaved_note %s\n", note);
    }
    U("bytes_written", st.bytes_written);
    U("bytes_read", st.bytes_read);
    U("pending_bytes", st.pending_bytes);
    U("upload_in_flight_bytes", st.upload_bytes_in_flight);
    U("journal_bytes", st.journal_bytes);
    U("segments_uploaded", st.segments_uploaded);
    U("uploaded_bytes", st.bytes_uploaded);
    buf_printf(out, "write_amplification_ratio %.3f\n", st.write_amplification);
    U("fetched_bytes", st.bytes_fetched);
    U("readahead_bytes", st.readahead_bytes);
    U("cache_hit_blocks", st.cache_hit_blocks);
    U("cache_miss_blocks", st.cache_miss_blocks);
    buf_printf(out, "cache_hit_ratio %.3f\n", st.cache_hit_ratio);
    U("cache_used_bytes", st.cache_bytes);
    U("cache_capacity_bytes", st.cache_capacity);
    U("cache_corrupt_blocks", st.cache_corrupt_blocks);
    U("cache_kept_blocks", st.cache_kept_blocks);
    U("gc_segments_cleaned", st.gc_segments_cleaned);
    U("gc_copied_bytes", st.gc_bytes_copied);
    U("segments_deleted", st.segments_deleted);
    buf_printf(out, "garbage_ratio %.3f\n", st.garbage_ratio);
    U("data_sealed_bytes", st.data_bytes_sealed);
    U("data_stored_bytes", st.data_bytes_stored);
    buf_printf(out, "compression_ratio %.3f\n", st.compression_ratio);
    U("checkpoints", st.checkpoints);
    U("checkpoints_forced", st.checkpoints_forced);
    U("journal_records_replayed", st.journal_records_replayed);
    U("extents", st.extents);
    U("map_memory_bytes", st.map_bytes);
    U("cache_index_memory_bytes", st.cache_mem_bytes);
    U("requests_get", s->requests[STORE_GET]);
    U("requests_put", s->requests[STORE_PUT]);
    U("requests_head", s->requests[STORE_HEAD]);
    U("requests_delete", s->requests[STORE_DELETE]);
    U("requests_list", s->requests[STORE_LIST]);
    U("requests_copy", s->requests[STORE_COPY]);
    U("retries", s->retries);
    U("store_up_bytes", s->bytes_up);
    U("store_down_bytes", s->bytes_down);
    buf_printf(out, "request_cost_usd %.6f\n", st.request_cost);
#undef U
}
