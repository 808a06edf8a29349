package cecclient

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var fuzzMethods = []string{"POST", "PUT", "GET", "DELETE", "PATCH", "OPTIONS"}

// FuzzSignVerify: a request signed by Sign, written to the wire and parsed
// back as a server would, is accepted by VerifyRequest; a single-byte change
// of the body is rejected.
func FuzzSignVerify(f *testing.F) {
	f.Add(uint8(0), "CCFS/resource/ccfs/downloadBillFile", "locationId", "256", "application/json;charset=UTF-8", "v", []byte(vecBody), uint16(7))
	f.Add(uint8(1), "", "", "", "a/b", "", []byte{}, uint16(0))
	f.Add(uint8(2), "a b/ü/%41", "k k", "v&v=", "text/plain; q=1", "x y", []byte("\x00\xff body"), uint16(3))
	f.Add(uint8(3), "..//x", "=", "=", "t", "\t", []byte("{}"), uint16(1))
	f.Fuzz(func(t *testing.T, m uint8, path, qk, qv, ctype, extra string, body []byte, mut uint16) {
		s, err := NewSigner("ak/with/slash", "sk", []string{"host", "content-type", "content-length", "x-extra"})
		if err != nil {
			t.Fatal(err)
		}
		u := &url.URL{Scheme: "http", Host: "10.0.0.1:28443", Path: "/" + path}
		if qk != "" || qv != "" {
			u.RawQuery = url.Values{qk: {qv}}.Encode()
		}
		req, err := http.NewRequest(fuzzMethods[int(m)%len(fuzzMethods)], u.String(), nil)
		if err != nil {
			return // not expressible on the wire; nothing to check
		}
		req.Header.Set("Content-Type", ctype)
		req.Header.Set("X-Extra", extra)
		now := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
		if err := s.Sign(req, body, now); err != nil {
			// Only values that cannot be sent as signed may be refused.
			if ctype == strings.TrimSpace(ctype) && extra == strings.TrimSpace(extra) &&
				validHeaderValue(ctype) && validHeaderValue(extra) {
				t.Fatalf("Sign refused sendable values: %v", err)
			}
			return
		}
		var wire bytes.Buffer
		if err := req.Write(&wire); err != nil {
			return // not expressible on the wire; nothing to check
		}
		r, err := http.ReadRequest(bufio.NewReader(&wire))
		if err != nil {
			return // not expressible on the wire; nothing to check
		}
		got, err := io.ReadAll(r.Body)
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("body did not survive the wire: %v", err)
		}
		lookup := func(ak string) (string, bool) { return "sk", ak == "ak/with/slash" }
		if ak, err := VerifyRequest(r, got, lookup, now.Add(time.Second), 0); err != nil || ak != "ak/with/slash" {
			t.Fatalf("VerifyRequest rejected a signed request: %q %v\n%s", ak, err, req.Header.Get("Authorization"))
		}
		if len(got) > 0 {
			bad := bytes.Clone(got)
			i := int(mut) % len(bad)
			bad[i] ^= byte(mut>>8) | 1
			if _, err := VerifyRequest(r, bad, lookup, now, 0); err == nil {
				t.Fatalf("VerifyRequest accepted a body changed at byte %d", i)
			}
		}
	})
}

const fuzzPageMax = 4096

func FuzzDecodeTransferPage(f *testing.F) {
	f.Add([]byte(`{"errorCode":0,"total":2,"transferRecordList":[{"id":12345678901234567891,"callId":"c1","startTime":1,"locationId":256},{"id":"x2","opResult":"SUCCESS"}]}`))
	f.Add([]byte(`{"errorCode":"0","total":"1","transferRecordList":[{"id":"\ud800"},{"id":""},{"id":{}},null,{"id":"ok","startTime":"bad"}]}`))
	f.Add([]byte(`{"errorCode":900001,"errorMessage":"token expired"}`))
	f.Add([]byte("{\"transferRecordList\":[{\"id\":\"a\xffb\"}]}"))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := decodeTransferPage(bytes.NewReader(data), fuzzPageMax)
		if len(data) > fuzzPageMax && err == nil {
			t.Fatalf("accepted %d bytes, bound %d", len(data), fuzzPageMax)
		}
		if err != nil {
			return
		}
		checkPage(t, p.records, p.ids, p.rows, len(p.invalid))
		for i, r := range p.records {
			if string(r.ID) != p.ids[i] {
				t.Fatalf("id mismatch")
			}
		}
	})
}

func FuzzDecodeRecordHistoryPage(f *testing.F) {
	f.Add([]byte(`{"errorCode":0,"total":1,"recordList":[{"logId":98765432109876543210,"callSorId":"13800138000","locationId":"0"}]}`))
	f.Add([]byte(`{"errorCode":0,"recordList":[{"logId":"\ufffd"},{"logId":1.5},{"logId":"x","beginTime":true}]}`))
	f.Add([]byte(`{"errorCode":1,"errorMsg":"bad"}`))
	f.Add([]byte("{\"recordList\":[{\"logId\":\"\xc3\"}]}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := decodeRecordHistoryPage(bytes.NewReader(data), fuzzPageMax)
		if len(data) > fuzzPageMax && err == nil {
			t.Fatalf("accepted %d bytes, bound %d", len(data), fuzzPageMax)
		}
		if err != nil {
			return
		}
		checkPage(t, p.records, p.ids, p.rows, len(p.invalid))
		for i, r := range p.records {
			if string(r.LogID) != p.ids[i] {
				t.Fatalf("id mismatch")
			}
		}
	})
}

func checkPage[T any](t *testing.T, records []T, ids []string, rows, invalid int) {
	t.Helper()
	if len(records) != len(ids) || len(records)+invalid != rows {
		t.Fatalf("%d records, %d ids, %d invalid, %d rows", len(records), len(ids), invalid, rows)
	}
	for _, id := range ids {
		if id == "" || !utf8.ValidString(id) || strings.ContainsRune(id, utf8.RuneError) {
			t.Fatalf("yielded bad id %q", id)
		}
	}
}

// FuzzValidateUploadWAV: never panics on any input; reading the input as a
// stream that cannot seek gives the same verdict as the bytes; a generated
// valid WAV passes.
func FuzzValidateUploadWAV(f *testing.F) {
	f.Add([]byte("RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x06\x00\x01\x00\x40\x1f\x00\x00\x40\x1f\x00\x00\x01\x00\x08\x00data\x00\x00\x00\x00"), uint8(6), uint16(0))
	f.Add(makeWAV(WAVFormatPCM, 11), uint8(1), uint16(11))
	f.Add([]byte("RIFF\xff\xff\xff\xffWAVEdata\xff\xff\xff\xff"), uint8(7), uint16(300))
	f.Add([]byte("<html>"), uint8(0), uint16(1))
	f.Fuzz(func(t *testing.T, data []byte, tag uint8, n uint16) {
		err := ValidateUploadWAV(data, 1<<16)
		serr := CheckUploadWAV(onlyReader{bytes.NewReader(data)}, int64(len(data)), 1<<16)
		if fmt.Sprint(err) != fmt.Sprint(serr) {
			t.Fatalf("bytes: %v\nstream: %v", err, serr)
		}
		tags := []uint16{WAVFormatPCM, WAVFormatALaw, WAVFormatMuLaw}
		wav := makeWAV(tags[int(tag)%len(tags)], int(n))
		if err := ValidateUploadWAV(wav, 1<<17); err != nil {
			t.Fatalf("valid WAV rejected: %v", err)
		}
	})
}
