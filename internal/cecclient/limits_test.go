package cecclient

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/cec-archiver/cec-archiver/internal/cecwire"
)

// recordingDownloads are the downloads bounded by MaxRecordingBytes.
var recordingDownloads = []struct {
	name, path string
	call       func(c *Client) (*Download, error)
}{
	{"DownloadRecordFile", cecwire.PathDownloadRecordFile, func(c *Client) (*Download, error) {
		return c.DownloadRecordFile(context.Background(), recName)
	}},
	{"DownloadRecord", cecwire.PathDownloadRecord, func(c *Client) (*Download, error) {
		return c.DownloadRecord(context.Background(), DownloadRecordRequest{CallID: "1748587841-77268"})
	}},
	{"DownloadOiapRecord", cecwire.PathDownloadOiapRecord, func(c *Client) (*Download, error) {
		return c.DownloadOiapRecord(context.Background(), recName, "")
	}},
	{"CMSDownloadRecordFile", cecwire.PathCMSDownloadRecordFile, func(c *Client) (*Download, error) {
		return c.CMSDownloadRecordFile(context.Background(), CMSRecordRequest{CallID: "1748587841-77268"})
	}},
}

func TestClient_ContentEncoding(t *testing.T) {
	wav := wavBytes(2000)
	for _, enc := range []string{"gzip", "br", "identity, gzip", "x-custom"} {
		t.Run("download "+enc, func(t *testing.T) {
			ts := newTestServer(t, map[string]handlerFunc{cecwire.PathDownloadRecordFile: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
				w.Header().Set("Content-Encoding", enc)
				writeFile(w, "", []byte("\x1f\x8b\x08\x00 compressed bytes"))
			}})
			_, err := newTestClient(t, ts.URL).DownloadRecordFile(context.Background(), recName)
			if !errors.Is(err, ErrUnexpectedContent) || !strings.Contains(err.Error(), strconv.Quote(enc)) {
				t.Fatalf("err = %v", err)
			}
			if IsTransient(err) || IsNotFound(err) || IsAuth(err) || !IsPermanent(err) || !IsContentError(err) {
				t.Errorf("err %v: class %v, auth %v", err, Classify(err), IsAuth(err))
			}
			if n := ts.hitCount(cecwire.PathDownloadRecordFile); n != 1 {
				t.Errorf("%d attempts, want 1", n)
			}
		})
	}
	t.Run("identity is fine", func(t *testing.T) {
		ts := newTestServer(t, map[string]handlerFunc{cecwire.PathDownloadRecordFile: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
			w.Header().Set("Content-Encoding", "identity")
			writeFile(w, "", wav)
		}})
		d, err := newTestClient(t, ts.URL).DownloadRecordFile(context.Background(), recName)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := readAll(t, d); err != nil || len(got) != len(wav) {
			t.Fatalf("%d bytes, %v", len(got), err)
		}
	})
	t.Run("JSON answer", func(t *testing.T) {
		ts := newTestServer(t, map[string]handlerFunc{cecwire.PathQueryBillData: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
			w.Header().Set("Content-Encoding", "gzip")
			writeJSON(w, map[string]any{"resultCode": "0", "resultData": map[string]any{"responseId": "r"}})
		}})
		_, err := newTestClient(t, ts.URL).QueryBillData(context.Background(), BillQuery{Begin: time.Now().Add(-time.Hour), End: time.Now(), CallBackURL: "https://cb.example/"})
		if !errors.Is(err, ErrUnexpectedContent) || !IsContentError(err) || IsTransient(err) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("OIFDE answer", func(t *testing.T) {
		var calls atomic.Int32
		ts := newTestServer(t, map[string]handlerFunc{
			cecwire.PathGetToken: tokenHandler(&calls, 0, 3600),
			cecwire.PathQueryTransferRecords: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
				w.Header().Set("Content-Encoding", "deflate")
				transferPage(w, 1, "t1")
			},
		})
		_, errs := collectTransfers(t, newTestClient(t, ts.URL), OIFDEQuery{CallID: "c"})
		if len(errs) != 1 || !errors.Is(errs[0], ErrUnexpectedContent) {
			t.Fatalf("errs = %v", errs)
		}
	})
}

func TestClient_MaxRecordingBytes(t *testing.T) {
	wav := wavBytes(5000)
	limit := int64(4096)
	for _, m := range recordingDownloads {
		t.Run(m.name+" Content-Length", func(t *testing.T) {
			var wrote atomic.Int64
			ts := newTestServer(t, map[string]handlerFunc{m.path: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
				w.Header().Set("Content-Type", cecwire.ContentTypeOctetStream)
				w.Header().Set("Content-Length", strconv.Itoa(len(wav)))
				w.WriteHeader(http.StatusOK)
				n, _ := w.Write(wav[:10])
				wrote.Add(int64(n))
			}})
			_, err := m.call(newTestClient(t, ts.URL, func(o *Options) { o.MaxRecordingBytes = limit }))
			if !errors.Is(err, ErrTooLarge) || IsTransient(err) || !IsContentError(err) {
				t.Fatalf("err = %v (%v)", err, Classify(err))
			}
			for _, want := range []string{"Content-Length " + strconv.Itoa(len(wav)), "limit of 4096 bytes"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("%q lacks %q", err, want)
				}
			}
			if n := ts.hitCount(m.path); n != 1 {
				t.Errorf("%d attempts, want 1", n)
			}
		})
		t.Run(m.name+" streamed", func(t *testing.T) {
			ts := newTestServer(t, map[string]handlerFunc{m.path: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
				w.Header().Set("Content-Type", cecwire.ContentTypeOctetStream)
				w.WriteHeader(http.StatusOK)
				for i := 0; i < len(wav); i += 1000 {
					if _, err := w.Write(wav[i:min(i+1000, len(wav))]); err != nil {
						return
					}
					w.(http.Flusher).Flush()
				}
			}})
			d, err := m.call(newTestClient(t, ts.URL, func(o *Options) { o.MaxRecordingBytes = limit }))
			if err != nil {
				t.Fatal(err)
			}
			if d.Length != -1 {
				t.Fatalf("Length = %d, want a body without Content-Length", d.Length)
			}
			got, err := readAll(t, d)
			if !errors.Is(err, ErrTooLarge) || IsTransient(err) || int64(len(got)) > limit {
				t.Fatalf("%d bytes, err = %v", len(got), err)
			}
		})
	}
	t.Run("exactly the limit", func(t *testing.T) {
		ts := newTestServer(t, map[string]handlerFunc{cecwire.PathDownloadRecordFile: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
			w.Header().Set("Content-Type", cecwire.ContentTypeOctetStream)
			w.WriteHeader(http.StatusOK)
			w.Write(wav)
		}})
		d, err := newTestClient(t, ts.URL, func(o *Options) { o.MaxRecordingBytes = int64(len(wav)) }).DownloadRecordFile(context.Background(), recName)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := readAll(t, d); err != nil || len(got) != len(wav) {
			t.Fatalf("%d bytes, %v", len(got), err)
		}
	})
	t.Run("bill files are not bounded", func(t *testing.T) {
		zip := append([]byte("PK\x03\x04"), make([]byte, 8000)...)
		ts := newTestServer(t, map[string]handlerFunc{cecwire.PathDownloadBillFile: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
			writeFile(w, "", zip)
		}})
		d, err := newTestClient(t, ts.URL, func(o *Options) { o.MaxRecordingBytes = limit }).DownloadBillFile(context.Background(), "20180702_9239cb50a8384bb0ab503441bf089446.zip")
		if err != nil {
			t.Fatal(err)
		}
		if got, err := readAll(t, d); err != nil || len(got) != len(zip) {
			t.Fatalf("%d bytes, %v", len(got), err)
		}
	})
	t.Run("default", func(t *testing.T) {
		c := newTestClient(t, "http://127.0.0.1:1")
		if c.o.MaxRecordingBytes != DefaultMaxRecordingBytes || DefaultMaxRecordingBytes != 2<<30 {
			t.Errorf("MaxRecordingBytes = %d", c.o.MaxRecordingBytes)
		}
	})
}

// trickle writes a WAV header, then one byte every gap until the request ends.
func trickle(gap time.Duration) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
		wav := wavBytes(1 << 20)
		w.Header().Set("Content-Type", cecwire.ContentTypeOctetStream)
		w.Header().Set("Content-Length", strconv.Itoa(len(wav)))
		w.WriteHeader(http.StatusOK)
		w.Write(wav[:600])
		w.(http.Flusher).Flush()
		for i := 600; i < len(wav); i++ {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(gap):
			}
			if _, err := w.Write(wav[i : i+1]); err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	}
}

func TestClient_MinRate(t *testing.T) {
	t.Run("trickle is cut within about the window", func(t *testing.T) {
		ts := newTestServer(t, map[string]handlerFunc{cecwire.PathDownloadRecordFile: trickle(20 * time.Millisecond)})
		window := 400 * time.Millisecond
		c := newTestClient(t, ts.URL, func(o *Options) { o.MinRate = 1024; o.MinRateWindow = window })
		d, err := c.DownloadRecordFile(context.Background(), recName)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, err = readAll(t, d)
		took := time.Since(start)
		if !errors.Is(err, ErrTooSlow) || !IsTransient(err) || IsContentError(err) {
			t.Fatalf("err = %v (%v)", err, Classify(err))
		}
		if !strings.Contains(err.Error(), "slower than 1024 B/s over 400ms") {
			t.Errorf("err = %v", err)
		}
		if took < window || took > 3*window {
			t.Errorf("cut after %s, want about %s", took, window)
		}
	})
	t.Run("slow sink does not count", func(t *testing.T) {
		wav := wavBytes(40000)
		ts := newTestServer(t, map[string]handlerFunc{cecwire.PathDownloadRecordFile: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
			writeFile(w, "", wav)
		}})
		c := newTestClient(t, ts.URL, func(o *Options) { o.MinRate = 1 << 20; o.MinRateWindow = 100 * time.Millisecond })
		d, err := c.DownloadRecordFile(context.Background(), recName)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Body.Close()
		buf := make([]byte, 4096)
		var n int
		for {
			k, err := d.Body.Read(buf)
			n += k
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("after %d bytes: %v", n, err)
			}
			time.Sleep(30 * time.Millisecond) // the sink is slow, not the server
		}
		if n != len(wav) {
			t.Fatalf("%d bytes, want %d", n, len(wav))
		}
	})
	t.Run("negative disables", func(t *testing.T) {
		ts := newTestServer(t, map[string]handlerFunc{cecwire.PathDownloadRecordFile: trickle(10 * time.Millisecond)})
		c := newTestClient(t, ts.URL, func(o *Options) { o.MinRate = -1; o.MinRateWindow = 100 * time.Millisecond })
		d, err := c.DownloadRecordFile(context.Background(), recName)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Body.Close()
		deadline := time.Now().Add(500 * time.Millisecond)
		buf := make([]byte, 64)
		for time.Now().Before(deadline) {
			if _, err := d.Body.Read(buf); err != nil {
				t.Fatalf("err = %v", err)
			}
		}
	})
	t.Run("defaults", func(t *testing.T) {
		c := newTestClient(t, "http://127.0.0.1:1")
		if c.o.MinRate != 1024 || c.o.MinRateWindow != time.Minute {
			t.Errorf("MinRate %d, MinRateWindow %s", c.o.MinRate, c.o.MinRateWindow)
		}
	})
}

func TestRateMeter(t *testing.T) {
	const s = time.Second
	for _, c := range []struct {
		name  string
		reads [][2]int64 // {milliseconds inside Read, bytes}
		cutAt int        // index of the read that trips it; -1: never
	}{
		{"trickle: 1 byte every 2 s", repeat(60, [2]int64{2000, 1}), 29}, // at 60 s
		{"steady 2 KiB/s", repeat(200, [2]int64{1000, 2048}), -1},
		// Sliding: the last 60 s average below 1024 B/s after 47 s of 100 B/s.
		{"fast then slow", append(repeat(60, [2]int64{1000, 4096}), repeat(120, [2]int64{1000, 100})...), 60 + 46},
		{"short transfer", repeat(50, [2]int64{1000, 10}), -1},
		{"burst after a slow half window", append(repeat(30, [2]int64{1000, 10}), repeat(60, [2]int64{1000, 1 << 20})...), -1},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := newRateMeter(1024, 60*s)
			got := -1
			for i, r := range c.reads {
				if m.tooSlow(time.Duration(r[0])*time.Millisecond, int(r[1])) {
					got = i
					break
				}
			}
			// Allow the eighth-of-a-window resolution.
			if (got < 0) != (c.cutAt < 0) || (c.cutAt >= 0 && (got < c.cutAt || got > c.cutAt+8)) {
				t.Errorf("cut at read %d, want %d", got, c.cutAt)
			}
			if len(m.marks) > 10 {
				t.Errorf("%d marks kept", len(m.marks))
			}
		})
	}
}

func repeat(n int, r [2]int64) [][2]int64 {
	out := make([][2]int64, n)
	for i := range out {
		out[i] = r
	}
	return out
}

func TestClient_MaxPages(t *testing.T) {
	t.Run("absurd total fails at once", func(t *testing.T) {
		var calls atomic.Int32
		ts := newTestServer(t, map[string]handlerFunc{
			cecwire.PathGetToken: tokenHandler(&calls, 0, 3600),
			cecwire.PathQueryTransferRecords: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
				ids := make([]any, 5)
				for i := range ids {
					ids[i] = "t" + strconv.Itoa(hit*10+i)
				}
				transferPage(w, 1_000_000_000, ids...)
			},
		})
		c := newTestClient(t, ts.URL)
		ids, errs := collectTransfers(t, c, OIFDEQuery{CtiCallID: "cti-77268", PageSize: 5})
		if len(ids) != 0 || len(errs) != 1 {
			t.Fatalf("ids %v, errs %v", ids, errs)
		}
		err := errs[0]
		if !errors.Is(err, ErrInvalidAnswer) || IsTransient(err) || !IsContentError(err) {
			t.Fatalf("err = %v (%v)", err, Classify(err))
		}
		for _, want := range []string{`ctiCallId "cti-77268"`, "total 1000000000", "50 pages of 5"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%q lacks %q", err, want)
			}
		}
		if n := ts.hitCount(cecwire.PathQueryTransferRecords); n != 1 {
			t.Errorf("%d pages asked, want 1", n)
		}
	})
	t.Run("no total stops after MaxPages", func(t *testing.T) {
		var calls atomic.Int32
		ts := newTestServer(t, map[string]handlerFunc{
			cecwire.PathGetToken: tokenHandler(&calls, 0, 3600),
			cecwire.PathQueryRecordHistory: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
				list := make([]any, 5)
				for i := range list {
					list[i] = map[string]any{"logId": "l" + strconv.Itoa(hit*10+i)}
				}
				writeJSON(w, map[string]any{"errorCode": 0, "recordList": list}) // no total
			},
		})
		c := newTestClient(t, ts.URL, func(o *Options) { o.MaxPages = 3 })
		var n int
		var errs []error
		for _, err := range c.QueryRecordHistory(context.Background(), OIFDEQuery{CallID: "1748587841-77268", PageSize: 5}) {
			if err != nil {
				errs = append(errs, err)
				continue
			}
			n++
		}
		if n != 15 || len(errs) != 1 || !errors.Is(errs[0], ErrInvalidAnswer) || !errors.Is(errs[0], ErrTooManyPages) {
			t.Fatalf("%d records, errs %v", n, errs)
		}
		if !strings.Contains(errs[0].Error(), `callId "******7841-77268"`) {
			t.Errorf("err = %v", errs[0])
		}
		if got := ts.hitCount(cecwire.PathQueryRecordHistory); got != 3 {
			t.Errorf("%d pages asked, want 3", got)
		}
	})
	t.Run("total within MaxPages", func(t *testing.T) {
		var calls atomic.Int32
		ts := newTestServer(t, map[string]handlerFunc{
			cecwire.PathGetToken: tokenHandler(&calls, 0, 3600),
			cecwire.PathQueryTransferRecords: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
				if hit == 3 {
					transferPage(w, 15, "t30", "t31", "t32", "t33", "t34")
					return
				}
				transferPage(w, 15, "t"+strconv.Itoa(hit*10), "t"+strconv.Itoa(hit*10+1), "t"+strconv.Itoa(hit*10+2), "t"+strconv.Itoa(hit*10+3), "t"+strconv.Itoa(hit*10+4))
			},
		})
		ids, errs := collectTransfers(t, newTestClient(t, ts.URL, func(o *Options) { o.MaxPages = 3 }), OIFDEQuery{CallID: "c", PageSize: 5})
		if len(ids) != 15 || len(errs) != 0 {
			t.Fatalf("ids %v, errs %v", ids, errs)
		}
	})
	t.Run("default", func(t *testing.T) {
		if c := newTestClient(t, "http://127.0.0.1:1"); c.o.MaxPages != DefaultMaxPages || DefaultMaxPages != 50 {
			t.Errorf("MaxPages = %d", c.o.MaxPages)
		}
	})
}

// observedClient is a test client whose log lines end up in the returned buffer.
func observedClient(t *testing.T, url string, mod ...func(*Options)) (*Client, *syncBuffer) {
	t.Helper()
	buf := &syncBuffer{}
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), buf, zapcore.DebugLevel))
	return newTestClient(t, url, append(mod, func(o *Options) { o.Logger = log })...), buf
}

func TestClient_Retry401(t *testing.T) {
	wav := wavBytes(500)
	t.Run("signed: once with a fresh signature", func(t *testing.T) {
		var auths []string
		ts := newTestServer(t, map[string]handlerFunc{cecwire.PathDownloadRecordFile: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
			auths = append(auths, r.Header.Get("Authorization"))
			if hit == 1 {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			writeFile(w, "", wav)
		}})
		var clock atomic.Int64
		clock.Store(time.Now().Add(-time.Minute).Unix())
		c, logs := observedClient(t, ts.URL, func(o *Options) {
			o.MaxAttempts = 1 // the 401 retry comes on top
			o.Now = func() time.Time { return time.Unix(clock.Add(1), 0) }
		})
		d, err := c.DownloadRecordFile(context.Background(), recName)
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, d)
		if len(auths) != 2 || strings.Split(auths[0], "/")[2] == strings.Split(auths[1], "/")[2] {
			t.Fatalf("attempts %q, want two with different timestamps", auths)
		}
		out := logs.String()
		if !strings.Contains(out, `"level":"warn"`) || !strings.Contains(out, "HTTP 401; retrying once with a fresh signature") {
			t.Errorf("no warning in %s", out)
		}
		for _, secret := range []string{testSK, auths[0], strings.Split(auths[0], ",")[len(strings.Split(auths[0], ","))-1]} {
			if strings.Contains(out, secret) {
				t.Errorf("log holds %q", secret)
			}
		}
	})
	t.Run("signed: a second 401 is returned", func(t *testing.T) {
		ts := newTestServer(t, map[string]handlerFunc{cecwire.PathQueryBillData: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
			w.WriteHeader(http.StatusUnauthorized)
		}})
		_, err := newTestClient(t, ts.URL).QueryBillData(context.Background(), BillQuery{Begin: time.Now().Add(-time.Hour), End: time.Now(), CallBackURL: "https://cb.example/"})
		if !IsAuth(err) || IsTransient(err) {
			t.Fatalf("err = %v", err)
		}
		if n := ts.hitCount(cecwire.PathQueryBillData); n != 2 {
			t.Errorf("%d attempts, want 2", n)
		}
	})
	t.Run("signed: waits for the next second", func(t *testing.T) {
		ts := newTestServer(t, map[string]handlerFunc{cecwire.PathDownloadRecordFile: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
			w.WriteHeader(http.StatusUnauthorized)
		}})
		c := newTestClient(t, ts.URL, func(o *Options) {
			o.Now = func() time.Time { return time.Unix(1000, int64(800*time.Millisecond)) }
		})
		c.authRetryWait = time.Second
		if d := c.nextSecond(); d != 200*time.Millisecond {
			t.Errorf("nextSecond = %s", d)
		}
	})
	for _, c := range []struct {
		name      string
		answers   []int // per hit: 401, 900001, else success
		wantErr   bool
		wantHits  int
		wantToken int32
	}{
		{"OIFDE: 401 then a fresh token", []int{401, 0}, false, 2, 2},
		{"OIFDE: 401 twice", []int{401, 401}, true, 2, 2},
		{"OIFDE: 900001 then 401, no second refresh", []int{900001, 401, 0}, true, 2, 2},
		{"OIFDE: 401 then 900001, no second refresh", []int{401, 900001, 0}, true, 2, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			var calls atomic.Int32
			ts := newTestServer(t, map[string]handlerFunc{
				cecwire.PathGetToken: tokenHandler(&calls, 0, 3600),
				cecwire.PathQueryTransferRecords: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
					switch c.answers[min(hit, len(c.answers))-1] {
					case 401:
						w.WriteHeader(http.StatusUnauthorized)
					case 900001:
						writeJSON(w, map[string]any{"errorCode": 900001, "errorMessage": "token expired"})
					default:
						transferPage(w, 1, "t1")
					}
				},
			})
			cl, logs := observedClient(t, ts.URL)
			ids, errs := collectTransfers(t, cl, OIFDEQuery{CallID: "c"})
			if c.wantErr != (len(errs) == 1) || (!c.wantErr && len(ids) != 1) {
				t.Fatalf("ids %v, errs %v", ids, errs)
			}
			if c.wantErr && c.answers[1] == 401 && !IsAuth(errs[0]) {
				t.Errorf("err = %v, want IsAuth", errs[0])
			}
			if n := ts.hitCount(cecwire.PathQueryTransferRecords); n != c.wantHits {
				t.Errorf("%d queries, want %d", n, c.wantHits)
			}
			if n := calls.Load(); n != c.wantToken {
				t.Errorf("%d gettoken calls, want %d", n, c.wantToken)
			}
			if out := logs.String(); strings.Contains(out, testToken) || strings.Contains(out, testPassword) {
				t.Errorf("secret in the log: %s", out)
			}
		})
	}
	t.Run("gettoken 401 is not retried", func(t *testing.T) {
		ts := newTestServer(t, map[string]handlerFunc{cecwire.PathGetToken: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
			w.WriteHeader(http.StatusUnauthorized)
		}})
		_, err := newTestClient(t, ts.URL).GetToken(context.Background())
		if !IsAuth(err) || ts.hitCount(cecwire.PathGetToken) != 1 {
			t.Fatalf("err = %v after %d attempts", err, ts.hitCount(cecwire.PathGetToken))
		}
	})
}
