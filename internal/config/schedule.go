package config

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// ParseSchedule parses a job schedule: a standard 5-field cron spec
// ("minute hour day-of-month month day-of-week") or a descriptor (@yearly,
// @annually, @monthly, @weekly, @daily, @midnight, @hourly, @every <duration>),
// optionally prefixed with "CRON_TZ=<IANA zone> ". Without CRON_TZ the spec is
// read in the process's local time zone (the TZ variable).
//
// The checks done here first give clearer messages than robfig/cron for the
// common mistakes and keep it away from inputs it panics on ("CRON_TZ=UTC"
// with nothing after it); the spec is then handed to cron.ParseStandard, the
// parser the scheduler uses, so whatever validates here also schedules.
func ParseSchedule(spec string) (cron.Schedule, error) {
	expr := strings.TrimSpace(spec)
	if expr == "" {
		return nil, errors.New("empty schedule")
	}
	if strings.HasPrefix(expr, "TZ=") {
		return nil, errors.New("use the CRON_TZ= prefix, not TZ=")
	}
	if rest, ok := strings.CutPrefix(expr, "CRON_TZ="); ok {
		zone, e, _ := strings.Cut(rest, " ")
		if zone == "" {
			return nil, errors.New("CRON_TZ= needs a time zone name, such as CRON_TZ=Asia/Shanghai")
		}
		if _, err := time.LoadLocation(zone); err != nil || zone == "Local" {
			return nil, fmt.Errorf("unknown time zone %q in CRON_TZ", zone)
		}
		expr = strings.TrimSpace(e)
		if expr == "" {
			return nil, fmt.Errorf("CRON_TZ=%s is not followed by a schedule", zone)
		}
	}
	if strings.HasPrefix(expr, "@") {
		if err := checkDescriptor(expr); err != nil {
			return nil, err
		}
	} else if n := len(strings.Fields(expr)); n != 5 {
		return nil, fmt.Errorf("%q has %d fields, want 5 (minute hour day-of-month month day-of-week) or a descriptor such as @hourly or @every 1h", expr, n)
	}
	s, err := cron.ParseStandard(strings.TrimSpace(spec))
	if err != nil {
		return nil, fmt.Errorf("%q: %w", expr, err)
	}
	return s, nil
}

func checkDescriptor(expr string) error {
	if d, ok := strings.CutPrefix(expr, "@every "); ok {
		v, err := time.ParseDuration(strings.TrimSpace(d))
		if err != nil {
			return fmt.Errorf("%q: invalid duration %q", expr, strings.TrimSpace(d))
		}
		if v < time.Second {
			return fmt.Errorf("%q: the interval must be at least 1s", expr)
		}
		return nil
	}
	switch expr {
	case "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly":
		return nil
	}
	return fmt.Errorf("unknown descriptor %q; want @yearly, @monthly, @weekly, @daily, @hourly or @every <duration>", expr)
}
