package sink

import (
	"errors"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

var parquetKeyRE = regexp.MustCompile(`^(?:(.+)/)?parquet/cdr/([a-z][a-z0-9_]*)/tenant=([A-Za-z0-9._%-]+)/year=([0-9]{4})/month=([0-9]{2})/day=([0-9]{2})/([A-Za-z0-9._%-]+)\.parquet$`)

// decodeParquetKey splits a key back into prefix, table, tenant, date and name.
func decodeParquetKey(t testing.TB, key string) (prefix, table, tenant, date, name string) {
	t.Helper()
	m := parquetKeyRE.FindStringSubmatch(key)
	if m == nil {
		t.Fatalf("key %q does not have the Parquet layout", key)
	}
	unescape := func(s string) string {
		v, err := url.PathUnescape(s)
		if err != nil {
			t.Fatalf("key %q: %v", key, err)
		}
		return v
	}
	return m[1], m[2], unescape(m[3]), m[4] + "-" + m[5] + "-" + m[6], unescape(m[7])
}

func TestParquetKey(t *testing.T) {
	day := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		prefix, table, tenant string
		day                   time.Time
		name, want            string
	}{
		{"rec", "calls", "tenant-1", day, "20261102_abc", "rec/parquet/cdr/calls/tenant=tenant-1/year=2026/month=11/day=01/20261102_abc.parquet"},
		{"", "recordings", "t", day.AddDate(0, 1, 8), "x", "parquet/cdr/recordings/tenant=t/year=2026/month=12/day=09/x.parquet"},
		{"a/b", "calls", "租户 /=", day, "n.zip", "a/b/parquet/cdr/calls/tenant=%E7%A7%9F%E6%88%B7%20%2F%3D/year=2026/month=11/day=01/n.zip.parquet"},
		// The UTC fields of the time give the date.
		{"", "calls", "t", time.Date(2026, 11, 1, 23, 0, 0, 0, time.FixedZone("", -3600)), "x", "parquet/cdr/calls/tenant=t/year=2026/month=11/day=02/x.parquet"},
	} {
		got, err := ParquetKey(tc.prefix, tc.table, tc.tenant, tc.day, tc.name)
		if err != nil || got != tc.want {
			t.Errorf("ParquetKey(%q, %q, %q, %v, %q) = %q, %v; want %q", tc.prefix, tc.table, tc.tenant, tc.day, tc.name, got, err, tc.want)
			continue
		}
		if err := ValidateKey(got); err != nil {
			t.Errorf("%s: %v", got, err)
		}
		p, table, tenant, _, name := decodeParquetKey(t, got)
		if p != tc.prefix || table != tc.table || tenant != tc.tenant || name != tc.name {
			t.Errorf("%s decodes to %q %q %q %q", got, p, table, tenant, name)
		}
	}
	for _, tc := range []struct {
		name, prefix, table, tenant string
		day                         time.Time
		file, want                  string
	}{
		{"bad prefix", "/x", "calls", "t", day, "n", "key prefix"},
		{"empty table", "", "", "t", day, "n", "parquet table"},
		{"table with a slash", "", "calls/x", "t", day, "n", "parquet table"},
		{"upper-case table", "", "Calls", "t", day, "n", "parquet table"},
		{"empty tenant", "", "calls", "", day, "n", "{tenant} is empty"},
		{"dot-dot name", "", "calls", "t", day, "..", `{name} is ".."`},
		{"control character", "", "calls", "t\x01", day, "n", "{tenant} contains U+0001"},
		{"invalid UTF-8", "", "calls", "t", day, "\xff", "{name} is not valid UTF-8"},
		{"no day", "", "calls", "t", time.Time{}, "n", "needs a day"},
		{"year out of range", "", "calls", "t", time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), "n", "year 10000 out of range"},
		{"too long", "", "calls", strings.Repeat("é", 120), day, strings.Repeat("é", 120), "bytes, limit"},
	} {
		_, err := ParquetKey(tc.prefix, tc.table, tc.tenant, tc.day, tc.file)
		if !errors.Is(err, ErrInvalidKey) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want ErrInvalidKey naming %q", tc.name, err, tc.want)
		}
	}
}

// FuzzParquetKey: every key ParquetKey accepts passes ValidateKey and
// decodes back to its inputs, so two inputs never share a key.
func FuzzParquetKey(f *testing.F) {
	f.Add("rec", "calls", "tenant-1", int64(1793491200), "20261102_abc")
	f.Add("", "recordings", "a/b %", int64(0), "x.zip")
	f.Fuzz(func(t *testing.T, prefix, table, tenant string, unix int64, name string) {
		day := time.Unix(unix, 0).UTC()
		key, err := ParquetKey(prefix, table, tenant, day, name)
		if err != nil {
			return
		}
		if err := ValidateKey(key); err != nil {
			t.Fatalf("%q: %v", key, err)
		}
		p, tb, tn, date, n := decodeParquetKey(t, key)
		if p != prefix || tb != table || tn != tenant || date != day.Format(time.DateOnly) || n != name {
			t.Fatalf("%q decodes to %q %q %q %q %q", key, p, tb, tn, date, n)
		}
	})
}
