/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* capstore inspect [--all] [--json] FILE...: a summary of wire files, for
 * people or (--json) for programs. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "inspect_json.h"

static const char usage[] = "capstore inspect [--all] [--json] FILE...";

#define LIST_LIMIT 16 /* entries listed per list unless --all */

static void help(void)
{
    printf("usage: %s\n\n"
           "Decode each FILE (the wire form of one cap; '-' reads standard input) and print\n"
           "a summary: kind, cap hash, wire size and, by kind, occupied cnode slots, Data\n"
           "pages (loaded / empty / missing), Instance fields and overlays, Image list\n"
           "lengths. Lists show their first %d entries unless --all is given.\n\n"
           "options:\n"
           "  --all     list every entry\n"
           "  --json    print a JSON array instead, one object per FILE, with the same\n"
           "            fields and every list whole (numbers above 2^53 as strings)\n\n"
           "Exit status: 0 success, 1 unreadable or malformed input (the message names the\n"
           "rule broken and its byte offset), 2 usage error.\n",
           usage, LIST_LIMIT);
}

static void hex32(char out[65], const cap_hash_t *h) { cli_hex(out, h->bytes, 32); }

static void more_line(size_t shown, size_t total)
{
    if (shown < total) printf("    ... %zu more (--all lists them)\n", total - shown);
}

static void target_text(char out[65], const cap_target_t *t)
{
    if (t->kind == CAP_TARGET_HASH)
        hex32(out, &t->hash);
    else
        snprintf(out, 65, "%s", t->kind == CAP_TARGET_REF ? "(ref)" : "(none)");
}

static void inspect_cnode(const cap_t *c, bool all)
{
    unsigned sl = cap_cnode_size_log(c);
    size_t n = cap_cnode_count(c);
    printf("size_log:          %u (%lu slots)\n", sl, 1ul << sl);
    printf("occupied:          %zu slot%s\n", n, n == 1 ? "" : "s");
    size_t shown = 0;
    for (size_t i = 0; i < n && (all || shown < LIST_LIMIT); i++, shown++) {
        uint32_t slot;
        cap_target_t t;
        if (cap_cnode_entry(c, i, &slot, &t) != CAP_OK) break;
        char hex[65];
        target_text(hex, &t);
        printf("    slot %-8" PRIu32 " %s\n", slot, hex);
    }
    more_line(shown, n);
}

static const char *page_state_name(cap_page_state_t s)
{
    switch (s) {
    case CAP_PAGE_EMPTY: return "empty";
    case CAP_PAGE_LOADED: return "loaded";
    case CAP_PAGE_MISSING: return "missing";
    }
    return "?";
}

static void inspect_data(const cap_t *c, bool all)
{
    uint32_t ps = cap_data_page_size(c);
    uint64_t n = cap_data_page_count(c);
    uint64_t counts[3] = {0, 0, 0};
    for (uint64_t i = 0; i < n; i++) {
        cap_page_state_t s = cap_data_page_state(c, i);
        if ((unsigned)s < 3) counts[s]++;
    }
    printf("page_size:         %" PRIu32 "\n", ps);
    printf("pages:             %" PRIu64 " (loaded %" PRIu64 ", empty %" PRIu64 ", missing %" PRIu64 ")\n",
           n, counts[CAP_PAGE_LOADED], counts[CAP_PAGE_EMPTY], counts[CAP_PAGE_MISSING]);
    printf("content size:      %" PRIu64 " bytes (%" PRIu64 " loaded in memory)\n", n * ps,
           counts[CAP_PAGE_LOADED] * ps);
    uint64_t shown = 0;
    for (uint64_t i = 0; i < n && (all || shown < LIST_LIMIT); i++, shown++) {
        cap_hash_t root;
        char hex[65] = "?";
        if (cap_data_page_root(c, i, &root) == CAP_OK) hex32(hex, &root);
        printf("    page %-8" PRIu64 " %-7s root %s\n", i, page_state_name(cap_data_page_state(c, i)),
               hex);
    }
    more_line((size_t)shown, (size_t)n);
}

static void inspect_instance(const cap_t *c, bool all)
{
    char hex[65];
    hex32(hex, cap_instance_image_hash_chain(c));
    printf("image_hash_chain:  %s\n", hex);
    hex32(hex, cap_instance_image_hash(c));
    printf("image_hash:        %s\n", hex);
    cap_target_t root = cap_instance_root_cnode(c);
    target_text(hex, &root);
    printf("root_cnode:        %s\n", hex);
    printf("mem_size:          %" PRIu32 "\n", cap_instance_mem_size(c));
    printf("pc:                %" PRIu64 "\n", cap_instance_pc(c));
    printf("gas_remaining:     %" PRIu64 "\n", cap_instance_gas_remaining(c));
    printf("regs:             ");
    for (unsigned i = 0; i < CAP_NUM_REGS; i++) printf(" %" PRIu64, cap_instance_reg(c, i));
    printf("\n");
    size_t n = cap_instance_overlay_count(c);
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t start;
        const uint8_t *b;
        size_t len;
        if (cap_instance_overlay(c, i, &start, &b, &len) == CAP_OK) total += len;
    }
    printf("rw_overlays:       %zu (%" PRIu64 " bytes)\n", n, total);
    size_t shown = 0;
    for (size_t i = 0; i < n && (all || shown < LIST_LIMIT); i++, shown++) {
        uint32_t start;
        const uint8_t *b;
        size_t len;
        if (cap_instance_overlay(c, i, &start, &b, &len) != CAP_OK) break;
        printf("    overlay %-5zu start %" PRIu32 ", %zu bytes\n", i, start, len);
    }
    more_line(shown, n);
}

static void slot_list(const char *name, const cap_slot_entry_t *e, size_t n, bool all)
{
    printf("%-18s %zu\n", name, n);
    size_t shown = 0;
    for (size_t i = 0; i < n && (all || shown < LIST_LIMIT); i++, shown++) {
        char hex[65];
        hex32(hex, &e[i].cap_hash);
        printf("    slot %-8" PRIu32 " %s\n", e[i].slot, hex);
    }
    more_line(shown, n);
}

static void inspect_image(const cap_t *c, bool all)
{
    cap_image_desc_t d;
    memset(&d, 0, sizeof d);
    cap_image_view(c, &d);
    printf("code:              %zu bytes\n", d.code_len);
    printf("bitmask:           %zu bytes\n", d.bitmask_len);
    printf("jump_table:        %zu entries\n", d.jump_table_len);
    printf("endpoints:         %zu\n", d.endpoints_len);
    printf("mappings:          %zu\n", d.mappings_len);
    slot_list("pinned:", d.pinned, d.pinned_len, all);
    slot_list("initial:", d.initial, d.initial_len, all);
    if (d.has_yield_marker)
        printf("yield_marker_slot: %" PRIu32 "\n", d.yield_marker_slot);
    else
        printf("yield_marker_slot: none\n");
}

/* With `json` (an array) the summary is appended there instead of printed. */
static int inspect_one(const char *path, bool all, json_t *json)
{
    cap_t *c;
    size_t wire_len;
    int rc = cli_decode_file("inspect", path, &c, &wire_len);
    if (rc != CLI_OK) return rc;
    char hex[65];
    int e = cli_hash_hex(c, hex);
    if (e != CAP_OK) {
        cli_error("inspect", "%s: %s", cli_display_name(path), cap_strerror(e));
        cap_release(c);
        return CLI_EBADINPUT;
    }
    if (json) {
        json_t *o = inspect_json(c, cli_display_name(path), hex, wire_len);
        cap_release(c);
        if (!o || json_array_append_new(json, o) != 0) {
            cli_error("inspect", "%s: out of memory", cli_display_name(path));
            return CLI_EBADINPUT;
        }
        return CLI_OK;
    }
    printf("file:              %s\n", cli_display_name(path));
    printf("kind:              %s\n", cli_kind_name(cap_kind(c)));
    printf("hash:              %s\n", hex);
    printf("wire size:         %zu bytes\n", wire_len);
    switch (cap_kind(c)) {
    case CAP_KIND_CNODE: inspect_cnode(c, all); break;
    case CAP_KIND_DATA: inspect_data(c, all); break;
    case CAP_KIND_INSTANCE: inspect_instance(c, all); break;
    case CAP_KIND_IMAGE: inspect_image(c, all); break;
    case CAP_KIND_TYPE:
        hex32(hex, cap_type_image_hash_chain(c));
        printf("image_hash_chain:  %s\n", hex);
        break;
    }
    cap_release(c);
    return CLI_OK;
}

int cmd_inspect(int argc, char **argv)
{
    int npos;
    bool want_help;
    cli_opt_t opts[] = {{"--all", false, false, NULL}, {"--json", false, false, NULL},
                        {NULL, false, false, NULL}};
    int rc = cli_parse_args("inspect", usage, argc, argv, opts, &want_help, &npos);
    if (rc != CLI_OK) return rc;
    if (want_help) {
        help();
        return CLI_OK;
    }
    if (npos < 1) return cli_usage_error("inspect", usage, "missing FILE");
    int stdin_uses = 0;
    for (int i = 1; i <= npos; i++) stdin_uses += strcmp(argv[i], "-") == 0;
    if (stdin_uses > 1) return cli_usage_error("inspect", usage, "standard input ('-') given twice");
    json_t *json = opts[1].seen ? json_array() : NULL;
    if (opts[1].seen && !json) {
        cli_error("inspect", "out of memory");
        return CLI_EBADINPUT;
    }
    int status = CLI_OK;
    for (int i = 1; i <= npos; i++) {
        if (i > 1 && !json) printf("\n");
        if (inspect_one(argv[i], opts[0].seen, json) != CLI_OK) status = CLI_EBADINPUT;
    }
    if (json) {
        /* The files that could be read, even when another could not. */
        if (json_dumpf(json, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0 || putchar('\n') == EOF)
            status = CLI_EBADINPUT;
        json_decref(json);
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_error("inspect", "error writing standard output");
        return CLI_EBADINPUT;
    }
    return status;
}
