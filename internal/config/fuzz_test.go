package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzDecode checks that no configuration file, however broken, makes
// decoding, validation or the warnings panic, and that every problem
// Validate reports for a decoded file is a *FieldError naming a key or table
// of the configuration, with a message.
func FuzzDecode(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*/*.toml")
	seeds = append(seeds, examplePath)
	for _, s := range seeds {
		if b, err := os.ReadFile(s); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("cec = { sk = 1, signed_headers = [[]] }\n[[jobs.cdr]]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := Default()
		if _, err := decode(data, cfg); err != nil {
			return
		}
		checkFieldErrors(t, cfg.Validate())
		_ = cfg.Warnings()
	})
}

// checkFieldErrors fails t unless every error joined in err is a
// *FieldError whose Field is the TOML path of a key or table of Config.
func checkFieldErrors(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("Validate = %T %q, want errors joined with errors.Join", err, err)
	}
	for _, e := range joined.Unwrap() {
		fe, ok := e.(*FieldError)
		if !ok {
			t.Errorf("Validate problem %T %q is not a *FieldError", e, e)
			continue
		}
		if _, ok := typeAt(strings.Split(fe.Field, ".")); !ok {
			t.Errorf("Validate problem %q: field %q names no configuration key", fe, fe.Field)
		}
		if fe.Msg == "" {
			t.Errorf("Validate problem for %q has no message", fe.Field)
		}
	}
}

// FuzzParseSchedule checks that no schedule string makes the parser panic
// (robfig/cron does on some inputs that ParseSchedule must screen out).
func FuzzParseSchedule(f *testing.F) {
	for _, s := range []string{"0 * * * *", "CRON_TZ=UTC 0 * * * *", "CRON_TZ=UTC", "TZ=", "@every 1h", "@every", "CRON_TZ=UTC @daily", "*/0 * * * *"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		_, _ = ParseSchedule(spec)
	})
}
