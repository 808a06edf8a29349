package sink

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// DefaultKeyTemplate lays recordings out by tenant, day, VDN and call; the
// readable base name is followed by {rid}, a short digest of the full
// upstream record ID, so that two recordings of one call whose file names
// share a base name (per-agent counters such as …/<agent>/1.wav) never share
// a key.
const DefaultKeyTemplate = "{tenant}/{yyyy}/{mm}/{dd}/{vdn}/{call_id}/{kind}-{name}-{rid}"

// ridLen is the width of {rid}: hex digits of SHA-256(RecordID).
const ridLen = 12

// KeyFields are the record fields a key template may use. Every string field
// is untrusted (it comes from the contact centre) and is validated and escaped
// by KeyBuilder.Build.
type KeyFields struct {
	Tenant   string
	VDN      string
	CallID   string
	RecordID string
	AgentID  string
	// Kind is a short lower-case word ([a-z][a-z0-9]{0,31}) such as
	// "recording" or "cdr"; anything else is rejected, not escaped, so that it
	// can be followed by "-" in a template.
	Kind string
	Name string
	// Time gives {yyyy} {mm} {dd} {hh}, in UTC.
	Time time.Time
}

// MaxFieldLen is the longest value a string field may have, in bytes, before
// escaping.
const MaxFieldLen = 255

// KeyBuilder renders object keys from a template such as DefaultKeyTemplate.
//
// Placeholders: {tenant} {vdn} {call_id} {record_id} {agent_id} {name} are
// escaped: bytes outside [A-Za-z0-9._-] become %XX (upper-case hex), which is
// injective and removes "/" and "\" from values. {rid} is the first 12 hex
// digits of the SHA-256 of RecordID. {kind} must match [a-z][a-z0-9]{0,31}.
// {yyyy} {mm} {dd} {hh} come from KeyFields.Time in UTC.
//
// Guarantees, checked by FuzzKeyBuilder: every key starts with prefix + "/",
// passes ValidateKey (no "..", no empty segment, no control characters, valid
// UTF-8, at most MaxKeyLen bytes), and two inputs that differ in a field the
// template uses never give the same key. NewKeyBuilder refuses templates that
// could not keep the last promise, e.g. "{call_id}-{name}" where both fields
// may contain "-".
type KeyBuilder struct {
	prefix string
	tokens []token
	uses   map[string]bool
}

type token struct {
	lit         string // literal text when ph == ""
	placeholder string
}

// placeholder descriptions: fixed output width (0 = variable) and the output
// alphabet, used to decide whether a template decodes uniquely.
type phSpec struct {
	width    int
	alphabet func(byte) bool
}

func isEscapedByte(c byte) bool { return unreserved(c) || c == '%' }
func isKindByte(c byte) bool    { return ('a' <= c && c <= 'z') || ('0' <= c && c <= '9') }
func isDigit(c byte) bool       { return '0' <= c && c <= '9' }
func isLowerHex(c byte) bool    { return isDigit(c) || ('a' <= c && c <= 'f') }

var placeholders = map[string]phSpec{
	"tenant":    {0, isEscapedByte},
	"vdn":       {0, isEscapedByte},
	"call_id":   {0, isEscapedByte},
	"record_id": {0, isEscapedByte},
	"agent_id":  {0, isEscapedByte},
	"name":      {0, isEscapedByte},
	"kind":      {0, isKindByte},
	"rid":       {ridLen, isLowerHex},
	"yyyy":      {4, isDigit},
	"mm":        {2, isDigit},
	"dd":        {2, isDigit},
	"hh":        {2, isDigit},
}

// NewKeyBuilder validates prefix and template. prefix may be empty; otherwise
// it must pass ValidateKey. template is relative, uses only known
// placeholders and literal [A-Za-z0-9._/-], contains {record_id} or {rid}
// (the only fields that tell two records of one call apart: {name} is a
// base name, which two recordings of a call may share), and decodes
// uniquely (see KeyBuilder).
func NewKeyBuilder(prefix, template string) (*KeyBuilder, error) {
	if prefix != "" {
		if err := ValidateKey(prefix); err != nil {
			return nil, fmt.Errorf("sink: key prefix %q: %w", prefix, err)
		}
	}
	tokens, err := parseTemplate(template)
	if err != nil {
		return nil, fmt.Errorf("sink: key template %q: %w", template, err)
	}
	kb := &KeyBuilder{prefix: prefix, tokens: tokens, uses: map[string]bool{}}
	for _, t := range tokens {
		if t.placeholder != "" {
			kb.uses[t.placeholder] = true
		}
	}
	if !kb.uses["record_id"] && !kb.uses["rid"] {
		return nil, fmt.Errorf("sink: key template %q: needs {record_id} or {rid}: without the record ID two recordings of one call "+
			"whose file names share a base name (e.g. per-agent counters .../1.wav) would share a key", template)
	}
	if err := checkUniqueDecoding(tokens); err != nil {
		return nil, fmt.Errorf("sink: key template %q: %w", template, err)
	}
	return kb, nil
}

func parseTemplate(tpl string) ([]token, error) {
	if tpl == "" {
		return nil, errors.New("empty")
	}
	var tokens []token
	rest := tpl
	for rest != "" {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			open = len(rest)
		}
		if lit := rest[:open]; lit != "" {
			if i := strings.IndexFunc(lit, func(r rune) bool { return r > 0x7f || !(unreserved(byte(r)) || r == '/') }); i >= 0 {
				return nil, fmt.Errorf("literal %q: character %q not allowed (only A-Z a-z 0-9 . _ - /)", lit, lit[i])
			}
			tokens = append(tokens, token{lit: lit})
		}
		if open == len(rest) {
			break
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return nil, errors.New("unclosed '{'")
		}
		name := rest[open+1 : open+end]
		if _, ok := placeholders[name]; !ok {
			return nil, fmt.Errorf("unknown placeholder {%s}", name)
		}
		tokens = append(tokens, token{placeholder: name})
		rest = rest[open+end+1:]
	}
	// Literal structure: relative, no empty or dot segments that no field
	// could fill. Placeholders never render empty, so checking the template
	// with each placeholder replaced by "x" is enough.
	var b strings.Builder
	for _, t := range tokens {
		if t.placeholder != "" {
			b.WriteString("x")
		} else {
			b.WriteString(t.lit)
		}
	}
	if err := ValidateKey(b.String()); err != nil {
		return nil, err
	}
	return tokens, nil
}

// checkUniqueDecoding proves that a rendered key can be split back into its
// field values: reading left to right, every variable-width placeholder must
// either be followed by a literal whose first byte the placeholder never
// produces, or be followed only by fixed-width text.
func checkUniqueDecoding(tokens []token) error {
	for i, t := range tokens {
		if t.placeholder == "" {
			continue
		}
		spec := placeholders[t.placeholder]
		if spec.width > 0 {
			continue
		}
		fixedTail := true
		for _, r := range tokens[i+1:] {
			if r.placeholder != "" && placeholders[r.placeholder].width == 0 {
				fixedTail = false
				break
			}
		}
		if fixedTail {
			continue
		}
		if i+1 < len(tokens) && tokens[i+1].placeholder == "" && !spec.alphabet(tokens[i+1].lit[0]) {
			continue
		}
		next := "another placeholder"
		if i+1 < len(tokens) && tokens[i+1].placeholder == "" {
			next = fmt.Sprintf("%q", tokens[i+1].lit[:1])
		}
		return fmt.Errorf("{%s} is followed by %s, which its values may contain: two records could share a key (separate variable fields with \"/\")", t.placeholder, next)
	}
	return nil
}

// Uses reports whether the template contains {name}.
func (kb *KeyBuilder) Uses(name string) bool { return kb.uses[name] }

// Build renders the key for f. It fails, wrapping ErrInvalidKey, when a field
// the template uses is empty, ".", "..", longer than MaxFieldLen, not valid
// UTF-8, or contains a control character; when Kind is not a short lower-case
// word; when Time is zero but a date placeholder is used; or when the key
// would exceed MaxKeyLen.
func (kb *KeyBuilder) Build(f KeyFields) (string, error) {
	var b strings.Builder
	if kb.prefix != "" {
		b.WriteString(kb.prefix)
		b.WriteByte('/')
	}
	t := f.Time.UTC()
	for _, tok := range kb.tokens {
		if tok.placeholder == "" {
			b.WriteString(tok.lit)
			continue
		}
		switch tok.placeholder {
		case "yyyy", "mm", "dd", "hh":
			if f.Time.IsZero() {
				return "", fmt.Errorf("%w: {%s} needs a record time", ErrInvalidKey, tok.placeholder)
			}
			if y := t.Year(); y < 1000 || y > 9999 {
				return "", fmt.Errorf("%w: year %d out of range", ErrInvalidKey, y)
			}
		}
		switch tok.placeholder {
		case "yyyy":
			fmt.Fprintf(&b, "%04d", t.Year())
		case "mm":
			fmt.Fprintf(&b, "%02d", int(t.Month()))
		case "dd":
			fmt.Fprintf(&b, "%02d", t.Day())
		case "hh":
			fmt.Fprintf(&b, "%02d", t.Hour())
		case "rid":
			if err := checkField("record_id", f.RecordID); err != nil {
				return "", err
			}
			sum := sha256.Sum256([]byte(f.RecordID))
			b.WriteString(hex.EncodeToString(sum[:])[:ridLen])
		case "kind":
			if !validKind(f.Kind) {
				return "", fmt.Errorf("%w: kind %q: want [a-z][a-z0-9]{0,31}", ErrInvalidKey, f.Kind)
			}
			b.WriteString(f.Kind)
		default:
			v := fieldValue(f, tok.placeholder)
			if err := checkField(tok.placeholder, v); err != nil {
				return "", err
			}
			escapeField(&b, v)
		}
	}
	key := b.String()
	if err := ValidateKey(key); err != nil {
		return "", err
	}
	return key, nil
}

func fieldValue(f KeyFields, name string) string {
	switch name {
	case "tenant":
		return f.Tenant
	case "vdn":
		return f.VDN
	case "call_id":
		return f.CallID
	case "record_id":
		return f.RecordID
	case "agent_id":
		return f.AgentID
	case "name":
		return f.Name
	}
	panic("sink: unknown key field " + name)
}

func checkField(name, v string) error {
	switch {
	case v == "":
		return fmt.Errorf("%w: {%s} is empty", ErrInvalidKey, name)
	case v == "." || v == "..":
		return fmt.Errorf("%w: {%s} is %q", ErrInvalidKey, name, v)
	case len(v) > MaxFieldLen:
		return fmt.Errorf("%w: {%s} is %d bytes, limit %d", ErrInvalidKey, name, len(v), MaxFieldLen)
	case !utf8.ValidString(v):
		return fmt.Errorf("%w: {%s} is not valid UTF-8", ErrInvalidKey, name)
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == utf8.RuneError {
			return fmt.Errorf("%w: {%s} contains %U", ErrInvalidKey, name, r)
		}
	}
	return nil
}

func validKind(s string) bool {
	if len(s) == 0 || len(s) > 32 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isKindByte(s[i]) {
			return false
		}
	}
	return true
}

func unreserved(c byte) bool {
	return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') || c == '.' || c == '_' || c == '-'
}

// escapeField percent-encodes every byte outside [A-Za-z0-9._-]. The mapping
// is injective: '%' itself is encoded, so the output decodes uniquely.
func escapeField(b *strings.Builder, v string) {
	const upperHex = "0123456789ABCDEF"
	for i := 0; i < len(v); i++ {
		c := v[i]
		if unreserved(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(upperHex[c>>4])
		b.WriteByte(upperHex[c&0xf])
	}
}

// Ledger object names. A day's ledgers live under
// {prefix}/{tenant}/ledger/{yyyy}/{mm}/{dd}/; the chain's head objects
// under {prefix}/{tenant}/ledger/head/. Names are fixed-width so that key
// order is write order within a day (by generation time) and sequence order
// among heads.
const (
	// ChainSeqWidth is the width of a chain sequence number in a name:
	// zero-padded decimal, so that key order is numeric order.
	ChainSeqWidth = 20
	// LedgerTimeLayout is the generation time in a ledger's name (UTC).
	LedgerTimeLayout = "20060102T150405.000000000Z"
	ledgerDigestLen  = 12
)

// LedgerName is the base name of a chained ledger object:
// "ledger-<generated>-<seq>-<digest>.json", with the generation time in
// LedgerTimeLayout, the chain sequence number ChainSeqWidth digits wide
// and the first 12 hex digits of the ledger's content digest. seq must be
// at least 1 and digest at least 12 lower-case hex digits.
func LedgerName(generated time.Time, seq uint64, digest string) (string, error) {
	if seq == 0 {
		return "", fmt.Errorf("%w: ledger sequence number 0 (the chain starts at 1)", ErrInvalidKey)
	}
	if len(digest) < ledgerDigestLen || !allLowerHex(digest) {
		return "", fmt.Errorf("%w: ledger digest %q: want lower-case hex, at least %d digits", ErrInvalidKey, digest, ledgerDigestLen)
	}
	return fmt.Sprintf("ledger-%s-%0*d-%s.json", generated.UTC().Format(LedgerTimeLayout), ChainSeqWidth, seq, digest[:ledgerDigestLen]), nil
}

// PreChainLedgerName is the base name ledgers had before the chain:
// "ledger-<generated>-<digest>.json" (no sequence number).
func PreChainLedgerName(generated time.Time, digest string) string {
	if len(digest) > ledgerDigestLen {
		digest = digest[:ledgerDigestLen]
	}
	return "ledger-" + generated.UTC().Format(LedgerTimeLayout) + "-" + digest + ".json"
}

// ParseLedgerName reads a ledger base name: chained (LedgerName, seq ≥ 1)
// or pre-chain (PreChainLedgerName, seq 0). ok is false for any other name.
func ParseLedgerName(name string) (generated time.Time, seq uint64, ok bool) {
	rest, found := strings.CutPrefix(name, "ledger-")
	if !found {
		return time.Time{}, 0, false
	}
	rest, found = strings.CutSuffix(rest, ".json")
	if !found || len(rest) < len(LedgerTimeLayout)+1+ledgerDigestLen {
		return time.Time{}, 0, false
	}
	gen, err := time.Parse(LedgerTimeLayout, rest[:len(LedgerTimeLayout)])
	if err != nil || rest[len(LedgerTimeLayout)] != '-' {
		return time.Time{}, 0, false
	}
	rest = rest[len(LedgerTimeLayout)+1:]
	switch len(rest) {
	case ledgerDigestLen:
		if !allLowerHex(rest) {
			return time.Time{}, 0, false
		}
		return gen, 0, true
	case ChainSeqWidth + 1 + ledgerDigestLen:
		seq, ok := parseSeq(rest[:ChainSeqWidth])
		if !ok || seq == 0 || rest[ChainSeqWidth] != '-' || !allLowerHex(rest[ChainSeqWidth+1:]) {
			return time.Time{}, 0, false
		}
		return gen, seq, true
	}
	return time.Time{}, 0, false
}

// ChainHeadName is the base name of the chain head object of sequence
// number seq (≥ 1): "<seq>.json", ChainSeqWidth digits.
func ChainHeadName(seq uint64) string { return fmt.Sprintf("%0*d.json", ChainSeqWidth, seq) }

// ParseChainHeadName reads a ChainHeadName; ok is false for any other name.
func ParseChainHeadName(name string) (seq uint64, ok bool) {
	digits, found := strings.CutSuffix(name, ".json")
	if !found || len(digits) != ChainSeqWidth {
		return 0, false
	}
	seq, ok = parseSeq(digits)
	return seq, ok && seq > 0
}

func parseSeq(digits string) (uint64, bool) {
	var n uint64
	for i := 0; i < len(digits); i++ {
		c := digits[i]
		if !isDigit(c) {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (^uint64(0)-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

func allLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isLowerHex(s[i]) {
			return false
		}
	}
	return s != ""
}

// ParquetKey is the key of a Parquet file of CDR rows, laid out the way
// query engines (DuckDB's hive_partitioning, Athena, Spark, Trino) read
// partitions:
//
//	{prefix}/parquet/cdr/{table}/tenant={tenant}/year={yyyy}/month={mm}/day={dd}/{name}.parquet
//
// The date comes from day in UTC (callers pass the tenant's calendar day as
// UTC fields). table is a lower-case word ([a-z][a-z0-9_]{0,31}); tenant and
// name are checked and escaped like KeyBuilder fields ({tenant}, {name}), so
// a key decodes back to its table, tenant, day and name, and two inputs that
// differ give two keys. Every key passes ValidateKey; an input that cannot
// make one fails wrapping ErrInvalidKey.
func ParquetKey(prefix, table, tenant string, day time.Time, name string) (string, error) {
	if prefix != "" {
		if err := ValidateKey(prefix); err != nil {
			return "", fmt.Errorf("sink: key prefix %q: %w", prefix, err)
		}
	}
	if !validTable(table) {
		return "", fmt.Errorf("%w: parquet table %q: want [a-z][a-z0-9_]{0,31}", ErrInvalidKey, table)
	}
	if err := checkField("tenant", tenant); err != nil {
		return "", err
	}
	if err := checkField("name", name); err != nil {
		return "", err
	}
	if day.IsZero() {
		return "", fmt.Errorf("%w: parquet key needs a day", ErrInvalidKey)
	}
	t := day.UTC()
	if y := t.Year(); y < 1000 || y > 9999 {
		return "", fmt.Errorf("%w: year %d out of range", ErrInvalidKey, y)
	}
	var b strings.Builder
	if prefix != "" {
		b.WriteString(prefix)
		b.WriteByte('/')
	}
	b.WriteString("parquet/cdr/")
	b.WriteString(table)
	b.WriteString("/tenant=")
	escapeField(&b, tenant)
	fmt.Fprintf(&b, "/year=%04d/month=%02d/day=%02d/", t.Year(), int(t.Month()), t.Day())
	escapeField(&b, name)
	b.WriteString(".parquet")
	key := b.String()
	if err := ValidateKey(key); err != nil {
		return "", err
	}
	return key, nil
}

func validTable(s string) bool {
	if len(s) == 0 || len(s) > 32 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isKindByte(s[i]) && s[i] != '_' {
			return false
		}
	}
	return true
}
