package cecclient

import (
	"strings"
	"testing"
	"time"
)

func TestNew(t *testing.T) {
	ok := testOptions("https://10.0.0.1:28443")
	c, err := New(ok)
	if err != nil {
		t.Fatal(err)
	}
	if c.RateLimit() != 1000 {
		t.Errorf("RateLimit = %v", c.RateLimit())
	}
	d, err := New(Options{FSURL: "https://10.0.0.1:28443", AK: "a", SK: "b"})
	if err != nil {
		t.Fatal(err)
	}
	o := d.o
	if o.RateLimit != 10 || o.Burst != 1 || o.MaxAttempts != 5 || o.BaseBackoff != 500*time.Millisecond ||
		o.MaxBackoff != 30*time.Second || o.MaxRetryAfter != 5*time.Minute || o.DialTimeout != 10*time.Second ||
		o.TLSHandshakeTimeout != 10*time.Second || o.ResponseHeaderTimeout != time.Minute || o.StallTimeout != time.Minute ||
		o.MaxJSONBytes != 16<<20 || o.UploadMaxBytes != 5<<20 || o.UserAgent == "" || o.Now == nil ||
		o.MaxRecordingBytes != 2<<30 || o.MinRate != 1024 || o.MinRateWindow != time.Minute || o.MaxPages != 50 {
		t.Errorf("defaults: %+v", o)
	}

	for _, c := range []struct {
		name string
		mod  func(*Options)
		want string
	}{
		{"no URL", func(o *Options) { o.FSURL, o.CMSURL, o.OIFDEURL = "", "", "" }, "one of FSURL"},
		{"ftp", func(o *Options) { o.FSURL = "ftp://h/" }, "FSURL: scheme must be https or http"},
		{"no host", func(o *Options) { o.CMSURL = "https:///x" }, "CMSURL: host is missing"},
		{"userinfo", func(o *Options) { o.OIFDEURL = "https://u:p@h" }, "OIFDEURL: credentials in the URL"},
		{"query", func(o *Options) { o.FSURL = "https://h/?a=b" }, "query and fragment"},
		{"no AK", func(o *Options) { o.AK = "" }, "AK is required"},
		{"no SK", func(o *Options) { o.SK = "" }, "SK is required"},
		{"no tenant", func(o *Options) { o.TenantID = "" }, "TenantID is required"},
		{"no password", func(o *Options) { o.APIPassword = "" }, "APIPassword is required"},
		{"host not signed", func(o *Options) { o.SignedHeaders = []string{"content-type"} }, "must include host"},
		{"negative", func(o *Options) { o.StallTimeout = -1 }, "StallTimeout is negative"},
		{"negative rate", func(o *Options) { o.RateLimit = -1 }, "must not be negative"},
		{"negative MaxRecordingBytes", func(o *Options) { o.MaxRecordingBytes = -1 }, "MaxRecordingBytes is negative"},
		{"negative MaxPages", func(o *Options) { o.MaxPages = -1 }, "MaxPages is negative"},
		{"negative MinRateWindow", func(o *Options) { o.MinRateWindow = -time.Second }, "MinRateWindow is negative"},
		{"CA file missing", func(o *Options) { o.CAFile = "/nonexistent/ca.pem" }, "CAFile"},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := ok
			c.mod(&o)
			_, err := New(o)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("New = %v, want %q", err, c.want)
			}
			if strings.Contains(err.Error(), testSK) || strings.Contains(err.Error(), testPassword) {
				t.Errorf("error leaks a secret: %v", err)
			}
		})
	}
	t.Run("all errors at once", func(t *testing.T) {
		_, err := New(Options{FSURL: "ftp://x", OIFDEURL: "https://h"})
		for _, w := range []string{"FSURL", "AK is required", "SK is required", "TenantID", "APIPassword"} {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("New = %v, want it to mention %q", err, w)
			}
		}
	})
	t.Run("base path prefix", func(t *testing.T) {
		c, err := New(Options{FSURL: "https://nslb.example:8443/cec/", AK: "a", SK: "b"})
		if err != nil {
			t.Fatal(err)
		}
		rq := &request{base: c.fs, path: "/CCFS/resource/ccfs/downloadRecordFile"}
		if u, err := rq.endpoint(); err != nil || u != "https://nslb.example:8443/cec/CCFS/resource/ccfs/downloadRecordFile" {
			t.Errorf("endpoint = %q, %v", u, err)
		}
	})
}
