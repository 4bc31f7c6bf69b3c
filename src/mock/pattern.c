/*
 * A string for a JSON Schema "pattern", written by walking the pattern, for the shapes
 * structured outputs ask for in practice: literals, escapes (\d \w \s and their negations,
 * escaped punctuation), '.', classes with ranges and negation, groups with '(?:' and
 * alternatives, and the quantifiers ? * + {n} {n,} {n,m} (lazy or not), '^' and '$' at
 * the ends. It matches nothing against anything: the string is built to fit. Anything
 * else (lookaround, backreferences, \b, \p{..}, \u escapes, anchors inside) is refused with
 * SKY_EINVAL, and the caller falls back to words: a documented gap of the mock.
 */
#include <string.h>

#include "internal.h"

#define MAX_DEPTH 16
#define MAX_LEN 4096 /* the string is cut short of this: SKY_EINVAL */
#define MAX_EXTRA 3  /* repeats drawn above a quantifier's minimum */

typedef struct walk {
    const char *p;
    uint64_t *rng;
    sky_buf *out;
} walk;

static int alternatives(walk *w, size_t from, size_t to, int depth);

static int emit(walk *w, const char *s, size_t n)
{
    if (w->out->len + n > MAX_LEN)
        return SKY_EINVAL;
    return sky_buf_append(w->out, s, n);
}

static int pick(walk *w, const char *set)
{
    size_t n = strlen(set);
    return emit(w, set + sky__mock_rand(w->rng) % n, 1);
}

/* The ']' of the class opening at @p at, or 0. */
static size_t class_end(const char *p, size_t at, size_t to)
{
    size_t i = at + 1;
    if (i < to && p[i] == '^')
        i++;
    for (; i < to; i++) { /* ECMAScript: "[]" is empty, "[^]" any character */
        if (p[i] == '\\')
            i++;
        else if (p[i] == ']')
            return i;
    }
    return 0;
}

/* The ')' of the group opening at @p at, or 0. */
static size_t group_end(const char *p, size_t at, size_t to)
{
    int depth = 0;
    for (size_t i = at; i < to; i++) {
        if (p[i] == '\\')
            i++;
        else if (p[i] == '[' && (i = class_end(p, i, to)) == 0)
            return 0;
        else if (p[i] == '(')
            depth++;
        else if (p[i] == ')' && --depth == 0)
            return i;
    }
    return 0;
}

/* The members of class escape @p e (d w s D W S) among printable ASCII, into @p set. */
static int class_escape(char e, unsigned char *set)
{
    for (int c = 0x20; c < 0x7f; c++) {
        int digit = c >= '0' && c <= '9';
        int word = digit || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        int in = e == 'd'   ? digit
                 : e == 'D' ? !digit
                 : e == 'w' ? word
                 : e == 'W' ? !word
                 : e == 's' ? c == ' '
                 : e == 'S' ? c != ' '
                            : -1;
        if (in < 0)
            return SKY_EINVAL;
        set[c] |= (unsigned char)in;
    }
    return 0;
}

/* A class's next member or range at *at into @p set. */
static int class_item(const char *p, size_t *at, size_t end, unsigned char *set)
{
    unsigned char lo = (unsigned char)p[*at];
    if (lo == '\\') {
        char e = p[++*at];
        (*at)++;
        if (strchr("dDwWsS", e))
            return class_escape(e, set);
        if (strchr("bBpPuUxXcknrtfv0123456789", e))
            return SKY_EINVAL;
        lo = (unsigned char)e;
    } else {
        (*at)++;
    }
    unsigned char hi = lo;
    if (*at + 1 < end && p[*at] == '-' && p[*at + 1] != '\\') {
        hi = (unsigned char)p[*at + 1];
        *at += 2;
    }
    if (lo >= 0x80 || hi >= 0x80 || hi < lo)
        return SKY_EINVAL;
    for (int c = lo; c <= hi; c++)
        set[c] = 1;
    return 0;
}

static int class_of(walk *w, size_t at, size_t end)
{
    unsigned char set[128] = {0};
    char members[128];
    size_t n = 0, i = at + 1;
    int negated = w->p[i] == '^';
    if (negated)
        i++;
    while (i < end) {
        int rc = class_item(w->p, &i, end, set);
        if (rc < 0)
            return rc;
    }
    for (int c = 0x20; c < 0x7f; c++)
        if (set[c] != negated)
            members[n++] = (char)c;
    members[n] = '\0';
    return n ? pick(w, members) : SKY_EINVAL;
}

/* The escape at @p at (after its backslash). */
static int escape_of(walk *w, size_t at)
{
    static const char digits[] = "0123456789";
    static const char words[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_";
    char e = w->p[at];
    switch (e) {
    case 'd':
        return pick(w, digits);
    case 'w':
        return pick(w, words);
    case 's':
        return emit(w, " ", 1);
    case 'D':
    case 'W':
        return pick(w, e == 'D' ? "abcxyz" : "-.:");
    case 'S':
        return pick(w, "abcxyz");
    case 'n':
        return emit(w, "\n", 1);
    case 't':
        return emit(w, "\t", 1);
    default:
        break;
    }
    if (e == '\0' || strchr("bBpPuUxXcfvrk0123456789", e))
        return SKY_EINVAL;
    return emit(w, w->p + at, 1);
}

/* A decimal number at *at, or -1. */
static long number_at(const char *p, size_t *at, size_t to)
{
    long v = -1;
    while (*at < to && p[*at] >= '0' && p[*at] <= '9' && v < 100000)
        v = (v < 0 ? 0 : v * 10) + (p[(*at)++] - '0');
    return v;
}

/* Nonzero when a braced quantifier {n}, {n,} or {n,m} starts at @p at. */
static int braced_quantifier(const char *p, size_t at, size_t to)
{
    size_t j = at + 1;
    if (at >= to || p[at] != '{' || number_at(p, &j, to) < 0)
        return 0;
    if (j < to && p[j] == ',') {
        j++;
        (void)number_at(p, &j, to);
    }
    return j < to && p[j] == '}';
}

/* The atom at *at: its extent in *out_end (one past it). 0 or SKY_EINVAL. */
static int atom_end(const walk *w, size_t at, size_t to, size_t *out_end)
{
    const char *p = w->p;
    size_t end = at + 1;
    size_t close = 0;
    if (p[at] == '\\') {
        end = at + 2;
    } else if (p[at] == '[') {
        if ((close = class_end(p, at, to)) == 0)
            return SKY_EINVAL;
        end = close + 1;
    } else if (p[at] == '(') {
        if ((close = group_end(p, at, to)) == 0)
            return SKY_EINVAL;
        end = close + 1;
        if (p[at + 1] == '?' && p[at + 2] != ':')
            return SKY_EINVAL; /* lookaround, named groups */
    } else if ((unsigned char)p[at] >= 0xC0) {
        while (end < to && ((unsigned char)p[end] & 0xC0) == 0x80)
            end++; /* a UTF-8 character is one atom */
    } else if (strchr(")*+?|", p[at]) || braced_quantifier(p, at, to)) {
        return SKY_EINVAL; /* nothing to repeat */
    }
    if (end > to)
        return SKY_EINVAL;
    *out_end = end;
    return 0;
}

/* Write the atom [at, end) once. */
static int atom_once(walk *w, size_t at, size_t end, int depth)
{
    const char *p = w->p;
    if (p[at] == '\\')
        return escape_of(w, at + 1);
    if (p[at] == '[')
        return class_of(w, at, end - 1);
    if (p[at] == '(') {
        size_t from = at + 1 + (p[at + 1] == '?' ? 2 : 0);
        return alternatives(w, from, end - 1, depth + 1);
    }
    if (p[at] == '.')
        return pick(w, "abcdefghijklmnopqrstuvwxyz");
    return emit(w, p + at, end - at);
}

/* The quantifier at *at (moved past it): how many times, drawn within its bounds. */
static long repeats(walk *w, size_t *at, size_t to)
{
    const char *p = w->p;
    long lo = 1, hi = 1;
    size_t i = *at;
    if (i < to && (p[i] == '?' || p[i] == '*' || p[i] == '+')) {
        lo = p[i] == '+';
        hi = p[i] == '?' ? 1 : lo + MAX_EXTRA;
        i++;
    } else if (i < to && p[i] == '{') {
        size_t j = i + 1;
        long a = number_at(p, &j, to), b = a;
        if (a >= 0 && j < to && p[j] == ',') {
            j++;
            b = number_at(p, &j, to);
            if (b < 0)
                b = a + MAX_EXTRA;
        }
        if (a < 0 || b < a || j >= to || p[j] != '}')
            return 1; /* not a quantifier: '{' is a literal, written by the next atom */
        lo = a;
        hi = b;
        i = j + 1;
    }
    if (i < to && p[i] == '?' && i > *at)
        i++; /* lazy: the same strings */
    *at = i;
    if (hi > lo + MAX_EXTRA)
        hi = lo + MAX_EXTRA;
    return lo + (long)(sky__mock_rand(w->rng) % (uint64_t)(hi - lo + 1));
}

/* One alternative: atoms and their quantifiers; at the top, '^' first and '$' last (an
 * anchor inside a group is refused: it may match nothing). */
static int sequence(walk *w, size_t at, size_t to, int depth)
{
    if (depth == 0 && at < to && w->p[at] == '^')
        at++;
    if (depth == 0 && to > at && w->p[to - 1] == '$' && (to - 1 == at || w->p[to - 2] != '\\'))
        to--;
    while (at < to) {
        size_t end;
        int rc = atom_end(w, at, to, &end);
        if (rc < 0 || w->p[at] == '^' || w->p[at] == '$')
            return SKY_EINVAL;
        size_t next = end;
        long n = repeats(w, &next, to);
        if (n > MAX_LEN)
            return SKY_EINVAL;
        for (long i = 0; i < n && rc == 0; i++)
            rc = atom_once(w, at, end, depth);
        if (rc < 0)
            return rc;
        at = next;
    }
    return 0;
}

/* [from, to) split at its top-level '|': one of them, drawn. */
static int alternatives(walk *w, size_t from, size_t to, int depth)
{
    size_t cuts[33], n = 0;
    int group = 0;
    if (depth > MAX_DEPTH)
        return SKY_EINVAL;
    cuts[n++] = from;
    for (size_t i = from; i < to; i++) {
        char ch = w->p[i];
        if (ch == '\\') {
            i++;
        } else if (ch == '[') {
            if ((i = class_end(w->p, i, to)) == 0)
                return SKY_EINVAL;
        } else if (ch == '(' || ch == ')') {
            group += ch == '(' ? 1 : -1;
            if (group < 0)
                return SKY_EINVAL; /* a ')' that closes nothing */
        } else if (ch == '|' && group == 0) {
            if (n == 32)
                return SKY_EINVAL;
            cuts[n++] = i + 1;
        }
    }
    if (group != 0)
        return SKY_EINVAL;
    size_t k = (size_t)(sky__mock_rand(w->rng) % n);
    size_t end = k + 1 < n ? cuts[k + 1] - 1 : to;
    return sequence(w, cuts[k], end, depth);
}

int sky__mock_pattern_string(const char *pattern, uint64_t *rng, sky_buf *out)
{
    walk w = {.p = pattern, .rng = rng, .out = out};
    size_t start = out->len;
    int rc = alternatives(&w, 0, strlen(pattern), 0);
    if (rc < 0)
        out->len = start;
    return rc;
}
