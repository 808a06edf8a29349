package cecsim

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/cecwire"
)

// The parsers that read request bytes must never panic.

func FuzzCheckUploadWAV(f *testing.F) {
	f.Add(wavBytes(1, 1, 8000, 8, 10))
	f.Add(wavBytes(6, 1, 8000, 8, 11))
	f.Add([]byte("RIFF\x00\x00\x00\x00WAVE"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = checkUploadWAV(b)
	})
}

func FuzzParseCCFS(f *testing.F) {
	f.Add([]byte(`{"request":{"version":"2.0"},"msgBody":{"fileName":"a"}}`))
	f.Add([]byte(`{"request":{"version":"2.0"},"msgBody":{"fileName":null,"x":[1]}}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var body cecwire.DownloadRecordBody
		_ = parseCCFS(b, &body, optional("fileName", 129), optional("callId", 25), required("ccId", 64))
	})
}

func FuzzVerifyAuthV2(f *testing.F) {
	f.Add(vectorAAuth, "")
	f.Add("auth-v2/exampleAK/2018-07-02T02:45:50Z/host;;x/"+strings.Repeat("a", 64), "a=%zz")
	f.Fuzz(func(t *testing.T, auth, query string) {
		r := httptest.NewRequest(http.MethodPost, cecwire.PathDownloadBillFile, strings.NewReader(vectorABody))
		r.Host = "10.0.0.1:28443"
		r.URL.RawQuery = query
		r.Header.Set("Authorization", auth)
		_, _ = VerifyAuthV2(r, []byte(vectorABody), lookupExample, vectorANow(), time.Minute)
	})
}
