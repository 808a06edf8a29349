package cecclient

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/cecwire"
)

func jsonEqual(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("body %q: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("body\n got %s\nwant %s", got, want)
	}
}

func TestClient_QueryBillData(t *testing.T) {
	ctx := context.Background()
	loc := time.FixedZone("UTC+8", 8*3600)
	q := BillQuery{
		Begin: time.Date(2026, 3, 1, 16, 0, 0, 0, time.UTC), End: time.Date(2026, 3, 3, 16, 0, 0, 0, time.UTC),
		Location: loc, CallBackURL: "https://archiver.example:8443/cec/callback", AccountID: "acc1",
	}
	t.Run("success", func(t *testing.T) {
		ts := newTestServer(t, map[string]handlerFunc{
			cecwire.PathQueryBillData: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
				jsonEqual(t, body, `{"request":{"version":"2.0"},"msgBody":{"beginTime":"2026-03-02 00:00:00","endTime":"2026-03-04 00:00:00",
					"accountId":"acc1","dataType":"call_record","callBackURL":"https://archiver.example:8443/cec/callback"}}`)
				writeJSON(w, map[string]any{"resultCode": "0", "resultDesc": "success",
					"resultData": map[string]any{"responseId": "9239cb50-a838-4bb0-ab50-3441bf089446"}})
			},
		})
		id, err := newTestClient(t, ts.URL).QueryBillData(ctx, q)
		if err != nil || id != "9239cb50-a838-4bb0-ab50-3441bf089446" {
			t.Fatalf("= %q, %v", id, err)
		}
	})
	t.Run("legacy response object only", func(t *testing.T) {
		ts := newTestServer(t, map[string]handlerFunc{
			cecwire.PathQueryBillData: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
				writeJSON(w, map[string]any{"response": map[string]any{"version": "2.0", "resultCode": "0100000"},
					"resultData": map[string]any{"responseId": "r-1"}})
			},
		})
		if id, err := newTestClient(t, ts.URL).QueryBillData(ctx, q); err != nil || id != "r-1" {
			t.Fatalf("= %q, %v", id, err)
		}
	})
	t.Run("invalid queries send nothing", func(t *testing.T) {
		ts := newTestServer(t, map[string]handlerFunc{})
		c := newTestClient(t, ts.URL)
		mods := map[string]func(*BillQuery){
			"window over 3 days": func(b *BillQuery) { b.End = b.Begin.Add(72*time.Hour + time.Second) },
			"end before begin":   func(b *BillQuery) { b.End = b.Begin.Add(-time.Hour) },
			"no begin":           func(b *BillQuery) { b.Begin = time.Time{} },
			"bad data type":      func(b *BillQuery) { b.DataType = "calls" },
			"no callback":        func(b *BillQuery) { b.CallBackURL = "" },
			"relative callback":  func(b *BillQuery) { b.CallBackURL = "/cb" },
		}
		for name, mod := range mods {
			bq := q
			mod(&bq)
			if _, err := c.QueryBillData(ctx, bq); !errors.Is(err, ErrInvalidArgument) || !IsPermanent(err) {
				t.Errorf("%s: err = %v", name, err)
			}
		}
		if len(ts.hits) != 0 {
			t.Errorf("requests sent: %v", ts.hits)
		}
		bq := q
		bq.End = bq.Begin.Add(72 * time.Hour)
		if _, err := bq.body(); err != nil {
			t.Errorf("exactly 3 days refused: %v", err)
		}
	})
	t.Run("parameter error is permanent", func(t *testing.T) {
		ts := newTestServer(t, map[string]handlerFunc{
			cecwire.PathQueryBillData: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
				writeResult(w, cecwire.CodeParamFormat, "beginTime format wrong")
			},
		})
		_, err := newTestClient(t, ts.URL).QueryBillData(ctx, q)
		var ae *APIError
		if !errors.As(err, &ae) || ae.ResultCode != "0300004" || ae.HTTPStatus != 200 || !IsPermanent(err) {
			t.Fatalf("err = %v", err)
		}
		if n := ts.hitCount(cecwire.PathQueryBillData); n != 1 {
			t.Errorf("%d attempts, want 1", n)
		}
	})
}

func TestBillFileName(t *testing.T) {
	got := BillFileName(time.Date(2018, 7, 2, 23, 0, 0, 0, time.UTC), "9239cb50-a838-4bb0-ab50-3441bf089446")
	if want := "20180702_9239cb50a8384bb0ab503441bf089446.zip"; got != want {
		t.Errorf("BillFileName = %q, want %q", got, want)
	}
}

// downloadMethod is one of the five download interfaces, called with fixed arguments.
type downloadMethod struct {
	name     string
	path     string
	service  string
	call     func(c *Client) (*Download, error)
	wantBody string // the JSON body the server must receive
	wantName string // Download.FileName without Content-Disposition
	query    string
}

var downloadMethods = []downloadMethod{
	{
		name: "DownloadBillFile", path: cecwire.PathDownloadBillFile, service: ServiceFS,
		call: func(c *Client) (*Download, error) {
			return c.DownloadBillFile(context.Background(), "20180702_9239cb50a8384bb0ab503441bf089446.zip")
		},
		wantBody: `{"request":{"version":"2.0"},"msgBody":{"billFileName":"20180702_9239cb50a8384bb0ab503441bf089446.zip"}}`,
		wantName: "20180702_9239cb50a8384bb0ab503441bf089446.zip",
	},
	{
		name: "DownloadRecordFile", path: cecwire.PathDownloadRecordFile, service: ServiceFS,
		call: func(c *Client) (*Download, error) {
			return c.DownloadRecordFile(context.Background(), "/10/1/record/100/20260301/13533/"+testPhone+".wav")
		},
		wantBody: `{"request":{"version":"2.0"},"msgBody":{"fileName":"/10/1/record/100/20260301/13533/` + testPhone + `.wav"}}`,
		wantName: testPhone + ".wav",
	},
	{
		name: "DownloadRecord", path: cecwire.PathDownloadRecord, service: ServiceFS,
		call: func(c *Client) (*Download, error) {
			return c.DownloadRecord(context.Background(), DownloadRecordRequest{FileName: `X:\17\0\20180903\15470\2043295.V3`, CallID: "1748587841-77268"})
		},
		wantBody: `{"request":{"version":"2.0"},"msgBody":{"fileName":"X:\\17\\0\\20180903\\15470\\2043295.V3","callId":"1748587841-77268"}}`,
		wantName: "2043295.V3",
	},
	{
		name: "DownloadOiapRecord", path: cecwire.PathDownloadOiapRecord, service: ServiceFS,
		call: func(c *Client) (*Download, error) {
			return c.DownloadOiapRecord(context.Background(), "Y:/39/odfsrecord/20201015/10233946082696733.wav", "256")
		},
		wantBody: `{"request":{"version":"2.0"},"msgBody":{"fileName":"Y:/39/odfsrecord/20201015/10233946082696733.wav"}}`,
		wantName: "10233946082696733.wav",
		query:    "locationId=256",
	},
	{
		name: "CMSDownloadRecordFile", path: cecwire.PathCMSDownloadRecordFile, service: ServiceCMS,
		call: func(c *Client) (*Download, error) {
			return c.CMSDownloadRecordFile(context.Background(), CMSRecordRequest{CallID: "1748587841-77268", WorkNo: "1001",
				Begin: time.Date(2026, 3, 1, 10, 11, 12, 0, time.UTC), CallerNo: testPhone})
		},
		wantBody: `{"callID":"1748587841-77268","workNo":"1001","beginTime":"20260301101112","callerNo":"` + testPhone + `"}`,
		wantName: "1748587841-77268.wav",
	},
}

// notFound answers each service's "nothing there" the way it does.
func notFound(service string, w http.ResponseWriter) {
	if service == ServiceCMS {
		writeJSON(w, map[string]any{"resultData": "", "resultCode": "1", "resultDesc": "Record List is empty"})
		return
	}
	writeResult(w, cecwire.CodeNoData, "No data found")
}

func TestClient_Downloads(t *testing.T) {
	wav := wavBytes(3000)
	zip := append([]byte("PK\x03\x04"), bytes.Repeat([]byte{7}, 2000)...)
	type outcome struct {
		class  Class
		hits   int
		code   string
		status int
	}
	cases := []struct {
		name    string
		handler func(m downloadMethod) handlerFunc
		check   func(t *testing.T, m downloadMethod, d *Download)
		want    *outcome // nil: success
	}{
		{
			name: "wav",
			handler: func(m downloadMethod) handlerFunc {
				return func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
					jsonEqual(t, body, m.wantBody)
					if r.URL.RawQuery != m.query {
						t.Errorf("query %q, want %q", r.URL.RawQuery, m.query)
					}
					writeFile(w, "", wav)
				}
			},
			check: func(t *testing.T, m downloadMethod, d *Download) {
				got, err := io.ReadAll(d.Body)
				if err != nil || !bytes.Equal(got, wav) {
					t.Errorf("body: %d bytes, %v", len(got), err)
				}
				if d.Zip || d.Length != int64(len(wav)) || d.FileName != m.wantName || d.ContentType != cecwire.ContentTypeOctetStream {
					t.Errorf("download %+v", d)
				}
			},
		},
		{
			name: "zip with content-disposition",
			handler: func(m downloadMethod) handlerFunc {
				return func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
					writeFile(w, `..\evil/recs.zip`, zip)
				}
			},
			check: func(t *testing.T, m downloadMethod, d *Download) {
				got, _ := io.ReadAll(d.Body)
				if !d.Zip || d.FileName != "recs.zip" || !bytes.Equal(got, zip) {
					t.Errorf("Zip %v FileName %q, %d bytes", d.Zip, d.FileName, len(got))
				}
			},
		},
		{
			name: "not found with HTTP 200",
			handler: func(m downloadMethod) handlerFunc {
				return func(w http.ResponseWriter, r *http.Request, body []byte, hit int) { notFound(m.service, w) }
			},
			want: &outcome{class: NotFound, hits: 1, status: 200},
		},
		{
			name: "parameter error with HTTP 200",
			handler: func(m downloadMethod) handlerFunc {
				return func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
					writeResult(w, cecwire.CodeParamNull, "fileName is null")
				}
			},
			want: &outcome{class: Permanent, hits: 1, code: "0300001", status: 200},
		},
		{
			name: "401 twice",
			handler: func(m downloadMethod) handlerFunc {
				return func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
					w.WriteHeader(http.StatusUnauthorized)
				}
			},
			want: &outcome{class: Permanent, hits: 2, status: 401},
		},
		{
			name: "JSON error labelled octet-stream",
			handler: func(m downloadMethod) handlerFunc {
				return func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
					writeFile(w, "", []byte(`{"resultCode":"0300028","resultDesc":"param error","resultData":""}`))
				}
			},
			want: &outcome{class: Permanent, hits: 1, code: "0300028", status: 200},
		},
		{
			name: "500 then 503 then success",
			handler: func(m downloadMethod) handlerFunc {
				return func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
					switch hit {
					case 1:
						w.WriteHeader(http.StatusInternalServerError)
					case 2:
						w.WriteHeader(http.StatusServiceUnavailable)
					default:
						writeFile(w, "", wav)
					}
				}
			},
			check: func(t *testing.T, m downloadMethod, d *Download) {
				if got, _ := io.ReadAll(d.Body); !bytes.Equal(got, wav) {
					t.Error("body differs")
				}
			},
		},
		{
			name: "download flow control then success",
			handler: func(m downloadMethod) handlerFunc {
				return func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
					if hit == 1 {
						writeResult(w, cecwire.CodeDownloadFlowCtl, "download flow control")
						return
					}
					writeFile(w, "", wav)
				}
			},
			check: func(t *testing.T, m downloadMethod, d *Download) { io.Copy(io.Discard, d.Body) },
		},
		{
			name: "always 502",
			handler: func(m downloadMethod) handlerFunc {
				return func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
					w.WriteHeader(http.StatusBadGateway)
				}
			},
			want: &outcome{class: Transient, hits: 3, status: 502},
		},
	}
	for _, m := range downloadMethods {
		t.Run(m.name, func(t *testing.T) {
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					ts := newTestServer(t, map[string]handlerFunc{m.path: tc.handler(m)})
					c := newTestClient(t, ts.URL, func(o *Options) { o.MaxAttempts = 3 })
					d, err := m.call(c)
					if tc.want == nil {
						if err != nil {
							t.Fatalf("err = %v", err)
						}
						defer d.Body.Close()
						tc.check(t, m, d)
						return
					}
					if err == nil {
						d.Body.Close()
						t.Fatal("succeeded")
					}
					if got := Classify(err); got != tc.want.class {
						t.Errorf("class %v, want %v: %v", got, tc.want.class, err)
					}
					var ae *APIError
					if !errors.As(err, &ae) || ae.ResultCode != tc.want.code && tc.want.code != "" || ae.HTTPStatus != tc.want.status || ae.Service != m.service {
						t.Errorf("err = %#v", ae)
					}
					if n := ts.hitCount(m.path); n != tc.want.hits {
						t.Errorf("%d attempts, want %d", n, tc.want.hits)
					}
					if !strings.HasPrefix(err.Error(), "cec: ") || strings.Contains(err.Error(), testPhone) {
						t.Errorf("error text %q", err)
					}
				})
			}
		})
	}
}

func TestClient_DownloadArguments(t *testing.T) {
	ts := newTestServer(t, map[string]handlerFunc{})
	c := newTestClient(t, ts.URL)
	ctx := context.Background()
	for name, call := range map[string]func() (*Download, error){
		"empty bill name":     func() (*Download, error) { return c.DownloadBillFile(ctx, "") },
		"bad utf-8":           func() (*Download, error) { return c.DownloadRecordFile(ctx, "a\xff") },
		"control char":        func() (*Download, error) { return c.DownloadRecordFile(ctx, "a\nb") },
		"no file nor call":    func() (*Download, error) { return c.DownloadRecord(ctx, DownloadRecordRequest{CcID: "1"}) },
		"location not number": func() (*Download, error) { return c.DownloadOiapRecord(ctx, "f.wav", "1&x=2") },
		"no call id":          func() (*Download, error) { return c.CMSDownloadRecordFile(ctx, CMSRecordRequest{WorkNo: "1"}) },
	} {
		if _, err := call(); !errors.Is(err, ErrInvalidArgument) || !IsPermanent(err) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	if len(ts.hits) != 0 {
		t.Errorf("requests sent: %v", ts.hits)
	}
	onlyOIFDE := newTestClient(t, ts.URL, func(o *Options) { o.FSURL, o.CMSURL, o.AK, o.SK = "", "", "", "" })
	if _, err := onlyOIFDE.DownloadRecordFile(ctx, "f.wav"); !errors.Is(err, ErrNotConfigured) {
		t.Errorf("FS not configured: %v", err)
	}
}

func TestClient_UploadFile(t *testing.T) {
	ctx := context.Background()
	wav := makeWAV(WAVFormatALaw, 4001)
	t.Run("success", func(t *testing.T) {
		ts := newTestServer(t, map[string]handlerFunc{
			cecwire.PathUploadFile: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
				if r.URL.Query().Get("vdnId") != "53" {
					t.Errorf("query %q", r.URL.RawQuery)
				}
				var env cecwire.Envelope[cecwire.UploadFileBody]
				json.Unmarshal(body, &env)
				got, err := base64.StdEncoding.DecodeString(env.MsgBody.Data)
				if err != nil || !bytes.Equal(got, wav) || env.Request.Version != "2.0" {
					t.Errorf("uploaded %d bytes, %v", len(got), err)
				}
				w.Header().Set("Content-Type", cecwire.ContentTypeJSON)
				w.Write([]byte(`{"resultCode":"0","resultDesc":"success","resultData":{"fileName":"Y:/3rdfile/53/thirdvoicebotfile/8fSsBaEb_1631869974029.wav","locationId":["0",256]}}`))
			},
		})
		res, err := newTestClient(t, ts.URL).UploadFile(ctx, 53, wav)
		if err != nil {
			t.Fatal(err)
		}
		if res.FileName != "Y:/3rdfile/53/thirdvoicebotfile/8fSsBaEb_1631869974029.wav" || !reflect.DeepEqual(res.LocationIDs, []string{"0", "256"}) {
			t.Errorf("result %+v", res)
		}
	})
	t.Run("invalid WAV sends nothing", func(t *testing.T) {
		ts := newTestServer(t, map[string]handlerFunc{})
		c := newTestClient(t, ts.URL, func(o *Options) { o.UploadMaxBytes = 1000 })
		bad := bytes.Clone(wav)
		copy(bad[24:], []byte{0x80, 0x3e}) // 16000 Hz
		for name, err := range map[string]error{
			"16 kHz":   func() error { _, err := c.UploadFile(ctx, 53, bad); return err }(),
			"too big":  func() error { _, err := c.UploadFile(ctx, 53, wav); return err }(),
			"not wav":  func() error { _, err := c.UploadFile(ctx, 53, []byte("<html>")); return err }(),
			"bad vdn":  func() error { _, err := c.UploadFile(ctx, 0, makeWAV(1, 10)); return err }(),
			"negative": func() error { _, err := c.UploadFile(ctx, -5, makeWAV(1, 10)); return err }(),
		} {
			if !IsPermanent(err) {
				t.Errorf("%s: err = %v", name, err)
			}
		}
		_, err := c.UploadFile(ctx, 53, bad)
		if !errors.Is(err, ErrInvalidWAV) || !strings.Contains(err.Error(), "fmt.sample_rate is 16000, want 8000") {
			t.Errorf("err = %v", err)
		}
		if len(ts.hits) != 0 {
			t.Errorf("requests sent: %v", ts.hits)
		}
	})
	t.Run("server error", func(t *testing.T) {
		ts := newTestServer(t, map[string]handlerFunc{
			cecwire.PathUploadFile: func(w http.ResponseWriter, r *http.Request, body []byte, hit int) {
				writeResult(w, cecwire.CodeParamTooLong, "data too long")
			},
		})
		_, err := newTestClient(t, ts.URL).UploadFile(ctx, 53, wav)
		var ae *APIError
		if !errors.As(err, &ae) || ae.ResultCode != "0300003" || !IsPermanent(err) {
			t.Fatalf("err = %v", err)
		}
	})
}
