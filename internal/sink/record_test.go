package sink_test

import (
	"strings"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/sink"
)

func TestMetaPolicy_Meta(t *testing.T) {
	rec := sink.RecordAttrs{
		CallID: "1714559400-123", AgentID: "1001", VDN: "7",
		Begin: time.Date(2024, 5, 1, 10, 30, 0, 0, time.UTC), End: time.Date(2024, 5, 1, 10, 35, 0, 0, time.UTC),
		CallerNo: "+86 138-0013-8000", CalleeNo: "10086",
	}
	const canary = "13800138000"
	key := []byte("0123456789abcdef0123456789abcdef")

	t.Run("OmitByDefault", func(t *testing.T) {
		m, err := sink.MetaPolicy{}.Meta(rec, "audio/wav")
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"call-id": "1714559400-123", "agent-id": "1001", "vdn": "7",
			"begin": "2024-05-01T10:30:00Z", "end": "2024-05-01T10:35:00Z"}
		for k, v := range want {
			if m.Metadata[k] != v || m.Tags[k] != v {
				t.Errorf("%s: metadata %q tag %q, want %q", k, m.Metadata[k], m.Tags[k], v)
			}
		}
		if len(m.Metadata) != len(want) || len(m.Tags) != len(want) {
			t.Errorf("extra entries: %v %v", m.Metadata, m.Tags)
		}
		assertNoPhone(t, m, canary, "10086")
	})

	t.Run("HMAC", func(t *testing.T) {
		p := sink.MetaPolicy{Phone: sink.PhoneHMAC, HMACKey: key}
		m, err := p.Meta(rec, "")
		if err != nil {
			t.Fatal(err)
		}
		h := m.Metadata["caller-hmac"]
		if len(h) != 64 || m.Tags["caller-hmac"] != h || m.Metadata["callee-hmac"] == "" {
			t.Errorf("hmac entries: %v", m.Metadata)
		}
		assertNoPhone(t, m, canary, "10086")
		// Formatting does not change the hash; the key does.
		rec2 := rec
		rec2.CallerNo = "+8613800138000"
		m2, _ := p.Meta(rec2, "")
		if m2.Metadata["caller-hmac"] != h {
			t.Error("the same number formatted differently hashes differently")
		}
		m3, _ := sink.MetaPolicy{Phone: sink.PhoneHMAC, HMACKey: []byte("another key of 32 bytes........")}.Meta(rec, "")
		if m3.Metadata["caller-hmac"] == h {
			t.Error("the hash does not depend on the key")
		}
	})

	t.Run("HostileValues", func(t *testing.T) {
		r := sink.RecordAttrs{CallID: "a\nb%c通", AgentID: strings.Repeat("x", 400), VDN: "<script>"}
		m, err := sink.MetaPolicy{}.Meta(r, "")
		if err != nil {
			t.Fatalf("Meta: %v", err)
		}
		if got := m.Metadata["call-id"]; got != "a%0Ab%25c%E9%80%9A" {
			t.Errorf("call-id metadata = %q", got)
		}
		if got := m.Tags["vdn"]; got != "_script_" {
			t.Errorf("vdn tag = %q", got)
		}
		if err := sink.ValidateMeta(m); err != nil {
			t.Errorf("ValidateMeta: %v", err)
		}
	})

	t.Run("Invalid", func(t *testing.T) {
		for _, p := range []sink.MetaPolicy{{Phone: sink.PhoneHMAC}, {Phone: "plain"}} {
			if _, err := p.Meta(rec, ""); err == nil {
				t.Errorf("%+v: no error", p)
			}
		}
	})
}

func assertNoPhone(t *testing.T, m sink.Meta, numbers ...string) {
	t.Helper()
	for _, mm := range []map[string]string{m.Metadata, m.Tags} {
		for k, v := range mm {
			for _, n := range numbers {
				if strings.Contains(strings.Map(digitsOnly, v), n) {
					t.Errorf("%s = %q contains phone number %s", k, v, n)
				}
			}
		}
	}
}

func digitsOnly(r rune) rune {
	if r >= '0' && r <= '9' {
		return r
	}
	return -1
}

func TestValidateMeta(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    sink.Meta
		ok   bool
	}{
		{"Empty", sink.Meta{}, true},
		{"Good", sink.Meta{SHA256: strings.Repeat("a", 64), Metadata: map[string]string{"call-id": "x"}, Tags: map[string]string{"Kind": "a b+c=d.e_f:g/h@i"}}, true},
		{"BadSHA", sink.Meta{SHA256: strings.Repeat("A", 64)}, false},
		{"UpperKey", sink.Meta{Metadata: map[string]string{"Call": "x"}}, false},
		{"ReservedKey", sink.Meta{Metadata: map[string]string{"sha256": "x"}}, false},
		{"ReservedTag", sink.Meta{Tags: map[string]string{"sha256": "x"}}, false},
		{"NonASCIIValue", sink.Meta{Metadata: map[string]string{"a": "é"}}, false},
		{"TooBig", sink.Meta{Metadata: map[string]string{"a": strings.Repeat("x", 2048)}}, false},
		{"TagChars", sink.Meta{Tags: map[string]string{"a": "x%y"}}, false},
		{"TooManyTags", sink.Meta{Tags: map[string]string{"1": "", "2": "", "3": "", "4": "", "5": "", "6": "", "7": "", "8": "", "9": "", "10": ""}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := sink.ValidateMeta(tc.m); (err == nil) != tc.ok {
				t.Errorf("ValidateMeta = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}
