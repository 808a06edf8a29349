package config

import (
	"testing"

	"github.com/cec-archiver/cec-archiver/internal/sink"
)

// TestKeyTemplate_MatchesSink keeps the key-template check and the phone
// policy names in step with the sink, which builds the keys.
func TestKeyTemplate_MatchesSink(t *testing.T) {
	if got := Default().Sink.S3.KeyTemplate; got != sink.DefaultKeyTemplate {
		t.Errorf("default sink.s3.key_template = %q, sink.DefaultKeyTemplate = %q", got, sink.DefaultKeyTemplate)
	}
	for _, p := range KeyTemplatePlaceholders() {
		tmpl := "{" + p + "}/{record_id}"
		if err := CheckKeyTemplate(tmpl); err != nil {
			t.Errorf("CheckKeyTemplate(%q): %v", tmpl, err)
		}
		if _, err := sink.NewKeyBuilder("", tmpl); err != nil {
			t.Errorf("placeholder {%s} is accepted here but not by the sink: %v", p, err)
		}
	}
	for _, tmpl := range []string{"{nope}/{record_id}", "{tenant}/{yyyy}", "{call_id}/{name}", "/{rid}", "a//{rid}", "a b/{rid}", "{rid"} {
		if CheckKeyTemplate(tmpl) == nil {
			t.Errorf("CheckKeyTemplate(%q) accepted it", tmpl)
		}
		if _, err := sink.NewKeyBuilder("", tmpl); err == nil {
			t.Errorf("sink.NewKeyBuilder(%q) accepts what config rejects", tmpl)
		}
	}
	if PhoneOmit != string(sink.PhoneOmit) || PhoneHMAC != string(sink.PhoneHMAC) {
		t.Errorf("phone modes %q %q differ from the sink's %q %q", PhoneOmit, PhoneHMAC, sink.PhoneOmit, sink.PhoneHMAC)
	}
}
