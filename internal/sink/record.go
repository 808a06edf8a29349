package sink

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// RecordAttrs are the attributes of a call record that may be stored with
// its recording. Strings are untrusted upstream values.
type RecordAttrs struct {
	CallID   string
	RecordID string
	AgentID  string
	VDN      string
	Begin    time.Time
	End      time.Time
	CallerNo string // phone number: see PhoneMode
	CalleeNo string // phone number: see PhoneMode
}

// PhoneMode says what happens to phone numbers in metadata and tags.
type PhoneMode string

// Phone modes.
const (
	// PhoneOmit leaves phone numbers out (the default).
	PhoneOmit PhoneMode = "omit"
	// PhoneHMAC stores HMAC-SHA256(key, digits) in hex. A plain hash would not
	// do: the space of phone numbers is small enough to brute-force
	// (reliability §3.9).
	PhoneHMAC PhoneMode = "hmac"
)

// MetaPolicy turns RecordAttrs into Meta.
type MetaPolicy struct {
	Phone   PhoneMode // "" means PhoneOmit
	HMACKey []byte    // required with PhoneHMAC; a secret
}

// Validate reports a policy that cannot be applied.
func (p MetaPolicy) Validate() error {
	switch p.Phone {
	case "", PhoneOmit:
		return nil
	case PhoneHMAC:
		if len(p.HMACKey) < 16 {
			return fmt.Errorf("sink: phone hmac: key must be at least 16 bytes, have %d", len(p.HMACKey))
		}
		return nil
	}
	return fmt.Errorf("sink: phone mode %q: want %q or %q", p.Phone, PhoneOmit, PhoneHMAC)
}

// Meta builds the metadata and tags for a record: call id, record id, agent
// id, VDN and times as user metadata, and the same as tags so lifecycle
// rules and inventories can filter on them. Values
// a store would reject are escaped rather than dropped: percent-encoded in
// metadata, replaced by "_" in tags (S3 accepts no "%" there; tags are for
// filtering, the metadata keeps the exact value). Phone numbers follow p.Phone.
func (p MetaPolicy) Meta(r RecordAttrs, contentType string) (Meta, error) {
	if err := p.Validate(); err != nil {
		return Meta{}, err
	}
	m := Meta{ContentType: contentType, Metadata: map[string]string{}, Tags: map[string]string{}}
	put := func(k, v string) {
		if v == "" {
			return
		}
		m.Metadata[k] = escapeMeta(v, printableASCIIByte, true)
		m.Tags[k] = escapeMeta(v, tagByte, false)
	}
	put("call-id", r.CallID)
	put("record-id", r.RecordID)
	put("agent-id", r.AgentID)
	put("vdn", r.VDN)
	if !r.Begin.IsZero() {
		put("begin", r.Begin.UTC().Format(time.RFC3339))
	}
	if !r.End.IsZero() {
		put("end", r.End.UTC().Format(time.RFC3339))
	}
	if p.Phone == PhoneHMAC {
		put("caller-hmac", p.hashPhone(r.CallerNo))
		put("callee-hmac", p.hashPhone(r.CalleeNo))
	}
	return m, ValidateMeta(m)
}

// hashPhone normalises a number to its digits (and a leading "+") so that
// formatting differences hash alike, then HMACs it.
func (p MetaPolicy) hashPhone(n string) string {
	var b strings.Builder
	for i := 0; i < len(n); i++ {
		if c := n[i]; ('0' <= c && c <= '9') || (c == '+' && b.Len() == 0) {
			b.WriteByte(c)
		}
	}
	if b.Len() == 0 {
		return ""
	}
	mac := hmac.New(sha256.New, p.HMACKey)
	mac.Write([]byte(b.String()))
	return hex.EncodeToString(mac.Sum(nil))
}

func printableASCIIByte(c byte) bool { return c >= 0x20 && c <= 0x7e && c != '%' }

func tagByte(c byte) bool {
	return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') || strings.IndexByte(" +-=._:/@", c) >= 0
}

// escapeMeta percent-encodes (or, without percent, replaces by "_") bytes for
// which ok is false, and truncates to MaxTagValueLen bytes without splitting
// an escape.
func escapeMeta(v string, ok func(byte) bool, percent bool) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		var s string
		switch {
		case ok(c):
			s = string(c)
		case !percent:
			s = "_"
		default:
			s = string([]byte{'%', hex[c>>4], hex[c&0xf]})
		}
		if b.Len()+len(s) > MaxTagValueLen {
			break
		}
		b.WriteString(s)
	}
	return b.String()
}
