package config

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"
)

// redacted is what every printed or marshalled form of a Secret shows.
const redacted = "<redacted>"

// Secret holds a credential (an SK, a password, a DSN). Every way of printing or
// marshalling it — String, GoString, Format (all fmt verbs, including %v, %+v
// and %#v of a struct that contains it), MarshalJSON, MarshalText and slog's
// LogValue — yields "<redacted>", so a Config can be logged or dumped without
// leaking. Only Reveal returns the value; call it at the point of use.
//
// The value lives in an unexported field so that it is also invisible to
// encoders that ignore the methods above and only see exported fields.
type Secret struct {
	value string
}

// NewSecret wraps s.
func NewSecret(s string) Secret { return Secret{value: s} }

// Reveal returns the secret value. Call it only where the value is used
// (signing, authenticating), never to log or print it.
func (s Secret) Reveal() string { return s.value }

// IsSet reports whether the secret is non-empty.
func (s Secret) IsSet() bool { return s.value != "" }

// String returns "<redacted>".
func (s Secret) String() string { return redacted }

// GoString returns "<redacted>", so %#v never shows the value.
func (s Secret) GoString() string { return redacted }

// Format writes "<redacted>" for every verb (%q quotes it), so no fmt verb and
// no flag can print the value.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		_, _ = io.WriteString(f, strconv.Quote(redacted))
		return
	}
	_, _ = io.WriteString(f, redacted)
}

// MarshalJSON returns the JSON string "<redacted>".
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(redacted) }

// MarshalText returns "<redacted>"; TOML, YAML and other text encoders use it.
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// LogValue returns "<redacted>" for log/slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// UnmarshalText sets the secret from a TOML string.
func (s *Secret) UnmarshalText(b []byte) error {
	s.value = string(b)
	return nil
}

// Duration is a time.Duration written in the configuration as a Go duration
// string: "30s", "1h30m", "250ms". A bare TOML integer is rejected (it would be
// ambiguous: seconds or nanoseconds?).
type Duration struct {
	time.Duration
}

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := parseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// String formats the duration like time.Duration.String without the zero
// units at its end: "72h" rather than "72h0m0s", "1h30m", "45s".
func (d Duration) String() string {
	s := d.Duration.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// MarshalText formats the duration like String.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

func parseDuration(s string) (time.Duration, error) {
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q: want a number with a unit, such as \"30s\", \"5m\" or \"1h\"", s)
	}
	return v, nil
}

// Size is a number of bytes. In the configuration it is either a TOML integer
// (bytes) or a string with a unit: "512KiB", "8MiB", "1GiB" (powers of 1024) or
// "500kB", "8MB", "1GB" (powers of 1000), or a plain "1048576".
type Size int64

// Sizes in bytes.
const (
	KiB Size = 1 << 10
	MiB Size = 1 << 20
	GiB Size = 1 << 30
	TiB Size = 1 << 40
)

// UnmarshalText parses a size with an optional unit.
func (z *Size) UnmarshalText(b []byte) error {
	v, err := parseSize(string(b))
	if err != nil {
		return err
	}
	*z = v
	return nil
}

// MarshalText formats the size like String.
func (z Size) MarshalText() ([]byte, error) { return []byte(z.String()), nil }

// String formats the size with the largest binary unit that divides it
// exactly ("16MiB"), or as plain bytes ("1000").
func (z Size) String() string {
	for _, u := range [...]struct {
		unit string
		n    Size
	}{{"TiB", TiB}, {"GiB", GiB}, {"MiB", MiB}, {"KiB", KiB}} {
		if z != 0 && z%u.n == 0 {
			return strconv.FormatInt(int64(z/u.n), 10) + u.unit
		}
	}
	return strconv.FormatInt(int64(z), 10)
}

func parseSize(s string) (Size, error) {
	bad := fmt.Errorf("invalid size %q: want bytes or a number with a unit, such as \"512KiB\", \"8MiB\" or \"1GiB\"", s)
	t := strings.TrimSpace(s)
	// Longest suffixes first, so "MiB" wins over "B".
	units := [...]struct {
		suffix string
		mult   int64
	}{
		{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
		{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
		{"b", 1},
	}
	mult := int64(1)
	lower := strings.ToLower(t)
	for _, u := range units {
		if strings.HasSuffix(lower, u.suffix) {
			mult = u.mult
			t = strings.TrimSpace(t[:len(t)-len(u.suffix)])
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil {
		return 0, bad
	}
	if n != 0 && (n > math.MaxInt64/mult || n < math.MinInt64/mult) {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return Size(n * mult), nil
}
