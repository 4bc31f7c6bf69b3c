/*
 * sky_json_scan's token path. jsmn (a header-only tokenizer, strict mode) splits the text
 * into tokens for about two thirds of what yajl's lexer and parser cost; it does not check
 * everything JSON asks, so a check over its tokens does, before anything is reported: only
 * whitespace and the one ',' or ':' JSON wants between tokens, keys that are strings,
 * numbers by JSON's grammar, literals spelled out, no raw tab or newline inside a string,
 * one root value. Every byte of the text is in a token or between two, so that is the
 * whole grammar. Then the report hands the tokens to the visitor, and passes over the
 * values a key asks to skip, without a callback for each. A text jsmn cannot take (a root
 * number, more tokens than this path holds) goes to the yajl path untouched.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define JSMN_STATIC
#define JSMN_STRICT
#define JSMN_PARENT_LINKS
#include <jsmn.h>

#include "json_scan.h"

/* The check and the report each keep their loop's state in registers when neither is
 * inlined into jsmn's loop (inlined, the one function spilled most of it to the stack). */
#if defined(__GNUC__) || defined(__clang__)
#define NOINLINE __attribute__((noinline))
#else
#define NOINLINE
#endif

/* Tokens on the stack (a chat reply has ~60), then on the heap up to TOKENS_MAX; a text
 * with more goes to the yajl path, which holds no more than a container's depth. */
#define TOKENS_STACK 256
#define TOKENS_MAX 65536

/* What tokenize returns for a text jsmn cannot take (error codes are far below). */
#define NOT_TAKEN (-1)

/* A string this long or shorter is unescaped on the stack. */
#define UNESCAPE_STACK 512

typedef struct walk {
    sky_span text;
    jsmntok_t *tok;
    const sky_json_visitor *v;
    void *ud;
    unsigned flags;
    int max_depth;
    int depth; /* containers open around the next token */
} walk;

/* ---- jsmn ------------------------------------------------------------------------------ */

/* Tokenize into @p *tok (TOKENS_STACK given); a larger array is malloc'd when needed (the
 * caller frees it when it differs from the one given): jsmn goes on where it ran out. The
 * token count, NOT_TAKEN when jsmn cannot take the text, or SKY_ENOMEM. */
static int tokenize(sky_span text, jsmntok_t **tok)
{
    jsmn_parser p;
    unsigned cap = TOKENS_STACK;
    jsmn_init(&p);
    if (text.len >= INT32_MAX)
        return NOT_TAKEN;
    for (;;) {
        int n = jsmn_parse(&p, text.ptr, text.len, *tok, cap);
        if (n >= 0)
            return p.pos == text.len ? n : NOT_TAKEN; /* jsmn stops at a NUL byte */
        if (n != JSMN_ERROR_NOMEM || cap >= TOKENS_MAX)
            return NOT_TAKEN;
        jsmntok_t *more = malloc(sizeof *more * cap * 4);
        if (more == NULL)
            return SKY_ENOMEM;
        memcpy(more, *tok, sizeof *more * cap);
        if (cap != TOKENS_STACK)
            free(*tok);
        *tok = more;
        cap *= 4;
    }
}

/* ---- what jsmn leaves to check ---------------------------------------------------------- */

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Whether text[from, to) is whitespace around the one separator @p sep, or whitespace only
 * when @p sep is 0. */
NOINLINE static int spaced_gap_ok(sky_span text, size_t from, size_t to, char sep)
{
    const char *p = text.ptr;
    while (from < to && is_space(p[from]))
        from++;
    if (sep != 0) {
        if (from == to || p[from] != sep)
            return 0;
        from++;
        while (from < to && is_space(p[from]))
            from++;
    }
    return from == to;
}

static inline size_t digits(const char *p, size_t i, size_t n)
{
    while (i < n && p[i] >= '0' && p[i] <= '9')
        i++;
    return i;
}

/* The kind of the number @p p by JSON's grammar, -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?,
 * or -1 when it is not one. */
static inline int number_kind(const char *p, size_t n)
{
    size_t i = n > 0 && p[0] == '-' ? 1 : 0, j;
    int kind = SKY_JSON_INTEGER;
    if (i == n || (p[i] == '0' ? i + 1 : digits(p, i, n)) == i)
        return -1;
    i = p[i] == '0' ? i + 1 : digits(p, i, n);
    if (i < n && p[i] == '.') {
        j = digits(p, i + 1, n);
        if (j == i + 1)
            return -1;
        i = j;
        kind = SKY_JSON_REAL;
    }
    if (i < n && (p[i] == 'e' || p[i] == 'E')) {
        i++;
        if (i < n && (p[i] == '+' || p[i] == '-'))
            i++;
        j = digits(p, i, n);
        if (j == i)
            return -1;
        i = j;
        kind = SKY_JSON_REAL;
    }
    return i == n ? kind : -1;
}

/* The kind of the primitive @p p (null, true, false or a number jansson reads), or -1. */
static inline int primitive_kind(const char *p, size_t n)
{
    if (p[0] == 'n' || p[0] == 't' || p[0] == 'f') {
        if (n == 4 && memcmp(p, "null", 4) == 0)
            return SKY_JSON_NULL;
        if (n == 4 && memcmp(p, "true", 4) == 0)
            return SKY_JSON_TRUE;
        return n == 5 && memcmp(p, "false", 5) == 0 ? SKY_JSON_FALSE : -1;
    }
    int kind = number_kind(p, n);
    if (kind == SKY_JSON_INTEGER && n < 18)
        return kind; /* under 18 bytes: well inside int64 */
    return kind >= 0 && sky__json_number_in_range(p, n, (sky_json_kind)kind) ? kind : -1;
}

/* Whether a string's bytes hold a raw control byte (only tab, newline, return get here). */
static int has_raw_space(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] < 0x20)
            return 1;
    return 0;
}

/* ---- strings as the visitor sees them --------------------------------------------------- */

static size_t put_utf8(char *o, long cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* The character of the escape at @p p (past its backslash), or -1; *len is set to its
 * length. jsmn has checked the letter and the hex digits, sky__json_text_differs that a
 * \\u is neither 0 nor half a surrogate pair. */
static long escaped(const char *p, size_t *len)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *k = p[0] != '\0' ? strchr(from, p[0]) : NULL;
    if (p[0] != 'u') {
        *len = 1;
        return k ? to[k - from] : -1;
    }
    long cp = sky__json_hex4(p + 1);
    *len = 5;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        cp = 0x10000 + ((cp - 0xD800) << 10) + (sky__json_hex4(p + 7) - 0xDC00);
        *len = 11;
    }
    return cp;
}

/* Decode the escapes of @p p into @p out (as long as @p p at most): its length, or
 * SIZE_MAX when an escape is not one JSON knows (jsmn has refused those already). */
static size_t unescape(const char *p, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '\\') {
            out[o++] = p[i];
            continue;
        }
        size_t len;
        long cp = escaped(p + i + 1, &len);
        if (cp < 0)
            return SIZE_MAX;
        o += put_utf8(out + o, cp);
        i += len;
    }
    return o;
}

/* A string with escapes, decoded, to the visitor: as a key (@p key) or a value. */
static int report_escaped(walk *w, sky_span s, int key)
{
    char stack[UNESCAPE_STACK];
    char *buf = s.len <= sizeof stack ? stack : malloc(s.len);
    if (buf == NULL)
        return SKY_ENOMEM;
    size_t n = unescape(s.ptr, s.len, buf);
    sky_span u = sky_span_make(buf, n);
    int rc = n == SIZE_MAX ? SKY_EJSON
             : key         ? w->v->key(w->ud, w->depth, u)
                           : w->v->scalar(w->ud, w->depth, SKY_JSON_STRING, u);
    if (buf != stack)
        free(buf);
    return rc;
}

/* ---- the check: every token in its place ---------------------------------------------- */

/* Where a token's bytes begin and end in the text: a string's quotes are not in jsmn's. */
static inline size_t tok_start(const jsmntok_t *t)
{
    return (size_t)t->start - (t->type == JSMN_STRING);
}

static inline size_t tok_end(const jsmntok_t *t)
{
    return (size_t)t->end + (t->type == JSMN_STRING);
}

/* Whether text[from, to) holds only the separator @p sep (none when 0) and whitespace.
 * Compact JSON, the usual text, is told in a comparison or two. */
static inline int gap_ok(sky_span text, size_t from, size_t to, char sep)
{
    if (to - from == (sep != 0))
        return sep == 0 || text.ptr[from] == sep;
    return spaced_gap_ok(text, from, to, sep);
}

/*
 * The innermost open container while the check looks at its members, in locals (nothing
 * takes its address, so it stays in registers); the container's token keeps its parent's
 * count, and the check's own link to the parent, while it is open.
 */
typedef struct frame {
    int cur;    /* its token, or -1 at the root */
    int count;  /* its members so far (keys and values in an object; at the root, 0 or 1) */
    int object; /* whether it is an object */
    size_t end; /* just past its closing bracket; SIZE_MAX at the root */
} frame;

static inline frame frame_of(const jsmntok_t *tok, int cur)
{
    if (cur < 0)
        return (frame){-1, 1, 0, SIZE_MAX}; /* the root value is done */
    return (frame){cur, tok[cur].size, tok[cur].type == JSMN_OBJECT, (size_t)tok[cur].end};
}

/* Whether the container of @p f may end, the bytes from @p at its last: only whitespace
 * is left in it, its bracket is the right one, an object's last key has its value. */
static inline int closes_clean(sky_span text, frame f, size_t at)
{
    return gap_ok(text, at, f.end - 1, 0) && !(f.object && f.count % 2 != 0) &&
           text.ptr[f.end - 1] == (f.object ? '}' : ']');
}

/* Whether token @p t may come next in @p f, after the bytes from @p at: the one separator
 * JSON wants before it, inside the container, a key where one is due. */
static inline int in_place(sky_span text, frame f, const jsmntok_t *t, size_t at)
{
    int key = f.object && f.count % 2 == 0;
    char sep = f.count == 0 ? 0 : f.object && !key ? ':' : ',';
    if (f.cur < 0 && f.count > 0)
        return 0; /* a second root value */
    return tok_end(t) < f.end && (!key || t->type == JSMN_STRING) &&
           gap_ok(text, at, tok_start(t), sep);
}

/* Whether a string or a primitive is one jansson reads; a primitive's token keeps its kind
 * (in jsmn's count of its children, 0 for a primitive) for the report. */
static inline int scalar_ok(const walk *w, jsmntok_t *t)
{
    const char *p = w->text.ptr + t->start;
    size_t n = (size_t)(t->end - t->start);
    if (t->type == JSMN_STRING)
        return !(w->flags & SKY__JSON_TEXT_SPACE) || !has_raw_space(p, n);
    t->size = primitive_kind(p, n);
    return t->size >= 0;
}

/* Whether the tokens make one JSON value: jsmn's strict mode leaves the bytes between
 * tokens, the primitives' spelling and raw tabs and newlines in strings unchecked. */
NOINLINE static int check_tokens(const walk *w, int n)
{
    jsmntok_t *tok = w->tok;
    frame f = {-1, 0, 0, SIZE_MAX};
    size_t at = 0; /* where the bytes not yet looked at begin */
    int depth = 0;
    for (int i = 0; i < n; i++) {
        jsmntok_t *t = &tok[i];
        for (; tok_start(t) >= f.end; depth--) {
            if (!closes_clean(w->text, f, at))
                return 0;
            at = f.end;
            f = frame_of(tok, tok[f.cur].parent);
        }
        if (!in_place(w->text, f, t, at))
            return 0;
        f.count++;
        if (t->type == JSMN_OBJECT || t->type == JSMN_ARRAY) {
            char open = t->type == JSMN_OBJECT ? '{' : '[';
            if (++depth > w->max_depth || t->end < 0 || w->text.ptr[t->start] != open)
                return 0;
            if (f.cur >= 0)
                tok[f.cur].size = f.count;
            t->parent = f.cur;
            f = (frame){i, 0, t->type == JSMN_OBJECT, (size_t)t->end};
            at = (size_t)t->start + 1;
        } else {
            if (!scalar_ok(w, t))
                return 0;
            at = tok_end(t);
        }
    }
    for (; f.cur >= 0; f = frame_of(tok, tok[f.cur].parent)) {
        if (!closes_clean(w->text, f, at))
            return 0;
        at = f.end;
    }
    return f.count == 1 && gap_ok(w->text, at, w->text.len, 0);
}

/* ---- the report: checked tokens to the visitor -------------------------------------------- */

static int report_string(walk *w, const jsmntok_t *t)
{
    int key = t->size == 1; /* jsmn counts a key's value as its child */
    sky_span s = sky_span_make(w->text.ptr + t->start, (size_t)(t->end - t->start));
    if (key ? w->v->key == NULL : w->v->scalar == NULL)
        return 0;
    if ((w->flags & SKY__JSON_TEXT_ESCAPE) && memchr(s.ptr, '\\', s.len) != NULL)
        return report_escaped(w, s, key);
    return key ? w->v->key(w->ud, w->depth, s) : w->v->scalar(w->ud, w->depth, SKY_JSON_STRING, s);
}

static int report_open(walk *w, const jsmntok_t *t)
{
    sky_json_kind kind = t->type == JSMN_OBJECT ? SKY_JSON_OBJECT : SKY_JSON_ARRAY;
    int rc = w->v->open ? w->v->open(w->ud, w->depth, kind, (size_t)t->start) : 0;
    w->depth++;
    return rc;
}

static int report_close(walk *w, const jsmntok_t *t)
{
    sky_json_kind kind = t->type == JSMN_OBJECT ? SKY_JSON_OBJECT : SKY_JSON_ARRAY;
    w->depth--;
    return w->v->close ? w->v->close(w->ud, w->depth, kind, (size_t)t->end) : 0;
}

static int report_token(walk *w, const jsmntok_t *t)
{
    if (t->type == JSMN_OBJECT || t->type == JSMN_ARRAY)
        return report_open(w, t);
    if (t->type == JSMN_STRING)
        return report_string(w, t);
    sky_span s = sky_span_make(w->text.ptr + t->start, (size_t)(t->end - t->start));
    return w->v->scalar ? w->v->scalar(w->ud, w->depth, (sky_json_kind)t->size, s) : 0;
}

/* The token after the value at @p v and everything in it. */
static int past_value(const jsmntok_t *tok, int v, int n)
{
    if (v >= n || (tok[v].type != JSMN_OBJECT && tok[v].type != JSMN_ARRAY))
        return v + 1;
    size_t end = (size_t)tok[v].end;
    int i = v + 1;
    while (i < n && (size_t)tok[i].start < end)
        i++;
    return i;
}

/* The checked tokens to the visitor, in order; the check's links give the closes. */
NOINLINE static int report_tokens(walk *w, int n)
{
    const jsmntok_t *tok = w->tok;
    int cur = -1, rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        for (; rc == 0 && cur >= 0 && tok_start(&tok[i]) >= (size_t)tok[cur].end;
             cur = tok[cur].parent)
            rc = report_close(w, &tok[cur]);
        if (rc == 0)
            rc = report_token(w, &tok[i]);
        if (rc == SKY_JSON_SKIP && tok[i].type == JSMN_STRING && tok[i].size == 1) {
            rc = 0;
            i = past_value(tok, i + 1, n) - 1; /* the key's value, unreported */
        } else if (tok[i].type == JSMN_OBJECT || tok[i].type == JSMN_ARRAY) {
            cur = i;
        }
    }
    for (; rc == 0 && cur >= 0; cur = tok[cur].parent)
        rc = report_close(w, &tok[cur]);
    return rc;
}

int sky__json_scan_tokens(sky_span text, int max_depth, unsigned flags,
                          const sky_json_visitor *visitor, void *user_data, int *out_done)
{
    jsmntok_t stack[TOKENS_STACK], *tok = stack;
    int n = tokenize(text, &tok);
    *out_done = n != NOT_TAKEN;
    int rc = n < 0 ? n : 0;
    if (n >= 0) {
        walk w = {text, tok, visitor, user_data, flags, max_depth, 0};
        const sky_json_visitor *v = visitor;
        if (!check_tokens(&w, n))
            rc = SKY_EJSON;
        else if (v->key || v->scalar || v->open || v->close)
            rc = report_tokens(&w, n);
    }
    if (tok != stack)
        free(tok);
    return *out_done ? rc : 0;
}
