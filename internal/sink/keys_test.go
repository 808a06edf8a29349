package sink_test

import (
	"errors"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/sink"
)

var day = time.Date(2024, 5, 1, 10, 30, 0, 0, time.UTC)

func TestNewKeyBuilder(t *testing.T) {
	for _, tc := range []struct {
		name, prefix, template string
		wantErr                string
	}{
		{"Default", "recordings", sink.DefaultKeyTemplate, ""},
		{"NoPrefix", "", "{record_id}.wav", ""},
		{"FixedTail", "", "{record_id}-{yyyy}{mm}{dd}", ""},
		{"KindThenDash", "", "{kind}-{name}-{rid}.wav", ""},
		{"LastFieldDotSuffix", "", "{vdn}/{record_id}.wav", ""},
		{"RidOnly", "", "{rid}", ""},
		{"Empty", "", "", "empty"},
		{"Unknown", "", "{caller}/{record_id}", "unknown placeholder"},
		{"Unclosed", "", "{record_id", "unclosed"},
		{"Absolute", "", "/{record_id}", "invalid key"},
		{"DotDot", "", "../{record_id}", "invalid key"},
		{"DoubleSlash", "", "a//{record_id}", "invalid key"},
		{"TrailingSlash", "", "{record_id}/", "invalid key"},
		{"Backslash", "", "a\\{record_id}", "not allowed"},
		{"Percent", "", "a%2F{record_id}", "not allowed"},
		{"NoIdentity", "", "{tenant}/{yyyy}", "needs {record_id} or {rid}"},
		// The old default: two recordings of one call named .../<agent>/1.wav
		// share {name}; refused.
		{"BaseNameOnly", "", "{tenant}/{yyyy}/{mm}/{dd}/{vdn}/{call_id}/{kind}-{name}", "needs {record_id} or {rid}"},
		{"CallIDOnly", "", "{call_id}.wav", "needs {record_id} or {rid}"},
		{"Adjacent", "", "{vdn}{record_id}", "followed by another placeholder"},
		{"AmbiguousDash", "", "{record_id}-{name}", `followed by "-"`},
		{"AmbiguousDot", "", "{vdn}.{record_id}", `followed by "."`},
		{"BadPrefix", "a/../b", "{record_id}", "key prefix"},
		{"ReservedPrefix", sink.ReservedPrefix, "{record_id}", "reserved"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := sink.NewKeyBuilder(tc.prefix, tc.template)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("NewKeyBuilder: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("NewKeyBuilder = %v, want error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestKeyBuilder_Build(t *testing.T) {
	kb, err := sink.NewKeyBuilder("recordings", sink.DefaultKeyTemplate+".wav")
	if err != nil {
		t.Fatal(err)
	}
	// rid of "/1/1/record/7/20240501/a1/1.wav" (the first 12 hex digits of its SHA-256).
	const rid = "c2593e8218d7"
	base := sink.KeyFields{Tenant: "acme", VDN: "7", CallID: "1714559400-123", RecordID: "/1/1/record/7/20240501/a1/1.wav", Kind: "recording", Name: "part1", Time: day}
	for _, tc := range []struct {
		name string
		mod  func(*sink.KeyFields)
		want string // "" means an error is expected
	}{
		{"Plain", func(*sink.KeyFields) {}, "recordings/acme/2024/05/01/7/1714559400-123/recording-part1-" + rid + ".wav"},
		{"LocalTimeIsUTC", func(f *sink.KeyFields) { f.Time = day.In(time.FixedZone("CST", 8*3600)) }, "recordings/acme/2024/05/01/7/1714559400-123/recording-part1-" + rid + ".wav"},
		{"SlashEscaped", func(f *sink.KeyFields) { f.CallID = "a/b" }, "recordings/acme/2024/05/01/7/a%2Fb/recording-part1-" + rid + ".wav"},
		{"TraversalEscaped", func(f *sink.KeyFields) { f.Name = "../../etc/passwd" }, "recordings/acme/2024/05/01/7/1714559400-123/recording-..%2F..%2Fetc%2Fpasswd-" + rid + ".wav"},
		{"BackslashEscaped", func(f *sink.KeyFields) { f.VDN = `a\b` }, "recordings/acme/2024/05/01/a%5Cb/1714559400-123/recording-part1-" + rid + ".wav"},
		{"PercentEscaped", func(f *sink.KeyFields) { f.CallID = "a%2Fb" }, "recordings/acme/2024/05/01/7/a%252Fb/recording-part1-" + rid + ".wav"},
		{"UnicodeEscaped", func(f *sink.KeyFields) { f.Tenant = "通话" }, "recordings/%E9%80%9A%E8%AF%9D/2024/05/01/7/1714559400-123/recording-part1-" + rid + ".wav"},
		{"SpaceEscaped", func(f *sink.KeyFields) { f.Name = "a b" }, "recordings/acme/2024/05/01/7/1714559400-123/recording-a%20b-" + rid + ".wav"},
		{"DotDot", func(f *sink.KeyFields) { f.CallID = ".." }, ""},
		{"Dot", func(f *sink.KeyFields) { f.VDN = "." }, ""},
		{"Empty", func(f *sink.KeyFields) { f.CallID = "" }, ""},
		{"Control", func(f *sink.KeyFields) { f.CallID = "a\nb" }, ""},
		{"NUL", func(f *sink.KeyFields) { f.Name = "a\x00" }, ""},
		{"InvalidUTF8", func(f *sink.KeyFields) { f.CallID = "a\xffb" }, ""},
		{"ReplacementChar", func(f *sink.KeyFields) { f.CallID = "a\uFFFDb" }, ""},
		{"TooLong", func(f *sink.KeyFields) { f.CallID = strings.Repeat("x", sink.MaxFieldLen+1) }, ""},
		{"KeyTooLong", func(f *sink.KeyFields) {
			f.CallID = strings.Repeat("/", 200) // 600 bytes escaped
			f.Name = strings.Repeat("/", 200)
		}, ""},
		{"BadKind", func(f *sink.KeyFields) { f.Kind = "Rec-1" }, ""},
		{"NoRecordID", func(f *sink.KeyFields) { f.RecordID = "" }, ""},
		// Same base name, another record: another key.
		{"OtherRecordSameName", func(f *sink.KeyFields) { f.RecordID = "/1/1/record/7/20240501/a2/1.wav" }, "recordings/acme/2024/05/01/7/1714559400-123/recording-part1-13a9154f15bb.wav"},
		{"NoTime", func(f *sink.KeyFields) { f.Time = time.Time{} }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := base
			tc.mod(&f)
			got, err := kb.Build(f)
			if tc.want == "" {
				if err == nil || !errors.Is(err, sink.ErrInvalidKey) {
					t.Errorf("Build = %q, %v; want ErrInvalidKey", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("Build = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// fuzzTemplates are the templates FuzzKeyBuilder tries besides the fuzzed one.
var fuzzTemplates = []string{
	sink.DefaultKeyTemplate,
	sink.DefaultKeyTemplate + ".wav",
	"{record_id}",
	"{kind}-{name}-{rid}",
	"{vdn}/{record_id}-{yyyy}{mm}{dd}{hh}.wav",
	"{tenant}/{agent_id}/{record_id}/{name}",
}

// FuzzKeyBuilder checks the key builder's promises on arbitrary fields and
// templates: every key stays under the prefix and is a clean relative path,
// and two inputs that differ in a field the template uses never share a key.
func FuzzKeyBuilder(f *testing.F) {
	f.Add("{call_id}", "acme", "7", "1714559400-123", "r1", "a1", "recording", "x.wav", int64(1714559400),
		"acme", "7", "1714559400-124", "r1", "a1", "recording", "x.wav", int64(1714559400))
	f.Add(sink.DefaultKeyTemplate, "a", "b", "c/d", "", "", "cdr", "e", int64(0),
		"a", "b/c", "d", "", "", "cdr", "e", int64(0))
	f.Add("{kind}-{name}", "", "", "", "", "", "a", "b-c", int64(1),
		"", "", "", "", "", "a-b", "c", int64(1))
	f.Add("{vdn}/{name}.wav", "", "..", "", "", "", "", ".", int64(5),
		"", "%2F", "", "", "", "", "%", int64(5))
	f.Add("{call_id}-{name}", "", "", "a-b", "", "", "", "c", int64(1),
		"", "", "a", "", "", "", "b-c", int64(1))
	f.Fuzz(func(t *testing.T, tpl string,
		t1, v1, c1, r1, a1, k1, n1 string, s1 int64,
		t2, v2, c2, r2, a2, k2, n2 string, s2 int64) {
		x := sink.KeyFields{Tenant: t1, VDN: v1, CallID: c1, RecordID: r1, AgentID: a1, Kind: k1, Name: n1, Time: time.Unix(s1, 0)}
		y := sink.KeyFields{Tenant: t2, VDN: v2, CallID: c2, RecordID: r2, AgentID: a2, Kind: k2, Name: n2, Time: time.Unix(s2, 0)}
		for _, template := range append([]string{tpl}, fuzzTemplates...) {
			for _, prefix := range []string{"", "archive/rec"} {
				kb, err := sink.NewKeyBuilder(prefix, template)
				if err != nil {
					continue
				}
				kx, errX := kb.Build(x)
				ky, errY := kb.Build(y)
				for _, k := range []struct {
					key string
					err error
				}{{kx, errX}, {ky, errY}} {
					if k.err != nil {
						continue
					}
					checkKey(t, prefix, template, k.key)
				}
				if errX == nil && errY == nil && kx == ky && !sameProjection(kb, x, y) {
					t.Fatalf("template %q: distinct inputs share key %q:\n%+v\n%+v", template, kx, x, y)
				}
				if errX == nil && errY == nil && kx != ky && sameProjection(kb, x, y) {
					t.Fatalf("template %q: equal inputs give %q and %q", template, kx, ky)
				}
			}
		}
	})
}

func checkKey(t *testing.T, prefix, template, key string) {
	t.Helper()
	if err := sink.ValidateKey(key); err != nil {
		t.Fatalf("template %q: key %q fails ValidateKey: %v", template, key, err)
	}
	if prefix != "" && !strings.HasPrefix(key, prefix+"/") {
		t.Fatalf("template %q: key %q escapes prefix %q", template, key, prefix)
	}
	if path.Clean(key) != key || !filepath.IsLocal(key) || strings.HasPrefix(key, "/") {
		t.Fatalf("template %q: key %q is not a clean local path", template, key)
	}
	if len(key) > sink.MaxKeyLen {
		t.Fatalf("template %q: key is %d bytes", template, len(key))
	}
}

// sameProjection reports whether x and y agree on every field kb uses.
func sameProjection(kb *sink.KeyBuilder, x, y sink.KeyFields) bool {
	tx, ty := x.Time.UTC(), y.Time.UTC()
	for _, c := range []struct {
		name string
		eq   bool
	}{
		{"tenant", x.Tenant == y.Tenant}, {"vdn", x.VDN == y.VDN}, {"call_id", x.CallID == y.CallID},
		{"record_id", x.RecordID == y.RecordID}, {"rid", x.RecordID == y.RecordID}, {"agent_id", x.AgentID == y.AgentID},
		{"kind", x.Kind == y.Kind}, {"name", x.Name == y.Name},
		{"yyyy", tx.Year() == ty.Year()}, {"mm", tx.Month() == ty.Month()},
		{"dd", tx.Day() == ty.Day()}, {"hh", tx.Hour() == ty.Hour()},
	} {
		if kb.Uses(c.name) && !c.eq {
			return false
		}
	}
	return true
}

// TestLedgerNames: chained and pre-chain ledger names and head names read
// back to what built them, sort by sequence number, and anything else is
// refused.
func TestLedgerNames(t *testing.T) {
	gen := time.Date(2026, 11, 3, 12, 1, 0, 123456789, time.FixedZone("CET", 3600))
	digest := strings.Repeat("ab", 32)
	name, err := sink.LedgerName(gen, 42, digest)
	if err != nil || name != "ledger-20261103T110100.123456789Z-00000000000000000042-abababababab.json" {
		t.Fatalf("sink.LedgerName = %q, %v", name, err)
	}
	if g, seq, ok := sink.ParseLedgerName(name); !ok || seq != 42 || !g.Equal(gen) {
		t.Errorf("sink.ParseLedgerName(%q) = %v %d %v", name, g, seq, ok)
	}
	pre := sink.PreChainLedgerName(gen, digest)
	if g, seq, ok := sink.ParseLedgerName(pre); !ok || seq != 0 || !g.Equal(gen) {
		t.Errorf("sink.ParseLedgerName(%q) = %v %d %v, want a pre-chain name", pre, g, seq, ok)
	}
	for _, bad := range []struct {
		seq    uint64
		digest string
	}{{0, digest}, {1, "abc"}, {1, strings.Repeat("AB", 32)}} {
		if _, err := sink.LedgerName(gen, bad.seq, bad.digest); !errors.Is(err, sink.ErrInvalidKey) {
			t.Errorf("sink.LedgerName(seq %d, %q) = %v, want sink.ErrInvalidKey", bad.seq, bad.digest, err)
		}
	}
	for _, bad := range []string{"", "ledger-.json", "head.json", "ledger-20261103T110100.123456789Z-abababababab.txt",
		"ledger-20261103T110100.123456789Z-00000000000000000000-abababababab.json", // seq 0
		"ledger-20261103T110100.123456789Z-0000000000000000004x-abababababab.json",
		"ledger-20261103T110100.123456789Z-99999999999999999999-abababababab.json", // overflows uint64
		"ledger-20261303T110100.123456789Z-abababababab.json",
		"ledger-20261103T110100.123456789Z-ABABABABABAB.json"} {
		if _, _, ok := sink.ParseLedgerName(bad); ok {
			t.Errorf("sink.ParseLedgerName(%q) accepted", bad)
		}
	}
	h9, h10 := sink.ChainHeadName(9), sink.ChainHeadName(10)
	if h9 != "00000000000000000009.json" || h9 >= h10 {
		t.Errorf("sink.ChainHeadName(9) = %q, (10) = %q: want fixed width in number order", h9, h10)
	}
	if seq, ok := sink.ParseChainHeadName(h10); !ok || seq != 10 {
		t.Errorf("sink.ParseChainHeadName(%q) = %d %v", h10, seq, ok)
	}
	for _, bad := range []string{"00000000000000000000.json", "10.json", "0000000000000000000a.json", "00000000000000000010.jsn"} {
		if _, ok := sink.ParseChainHeadName(bad); ok {
			t.Errorf("sink.ParseChainHeadName(%q) accepted", bad)
		}
	}
}
