package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecode checks that no configuration file, however broken, makes
// decoding or validation panic, and that every failure is an error.
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
		_ = cfg.Validate()
		_ = cfg.Warnings()
	})
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
