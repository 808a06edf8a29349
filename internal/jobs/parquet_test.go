package jobs

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/cdr"
	"github.com/cec-archiver/cec-archiver/internal/cecclient"
	"github.com/cec-archiver/cec-archiver/internal/cecwire"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/config"
	"github.com/cec-archiver/cec-archiver/internal/sink"
	"github.com/cec-archiver/cec-archiver/internal/sink/s3"
	"github.com/cec-archiver/cec-archiver/internal/sink/s3test"
)

// The parquetcheck tool (tools/parquetcheck: DuckDB, through cgo, in a
// module of its own) reads the Parquet files back independently of
// parquet-go. scripts/test.sh builds it and names it in
// CEC_PARQUETCHECK_BIN; without that the test builds it itself, once per
// tools module content, into the user cache.
var (
	duckOnce sync.Once
	duckBin  string
	duckErr  error
)

func parquetcheck(t *testing.T) string {
	t.Helper()
	duckOnce.Do(func() { duckBin, duckErr = buildParquetcheck() })
	if duckErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("parquetcheck (DuckDB): %v (CI=true: the independent Parquet reader must run)", duckErr)
		}
		t.Skipf("parquetcheck (DuckDB): %v (skipping outside CI)", duckErr)
	}
	return duckBin
}

func buildParquetcheck() (string, error) {
	if p := os.Getenv("CEC_PARQUETCHECK_BIN"); p != "" {
		return p, nil
	}
	dir, err := filepath.Abs(filepath.Join("..", "..", "tools", "parquetcheck"))
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, f := range []string{"go.mod", "go.sum", "main.go"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return "", err
		}
		h.Write(b)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	out := filepath.Join(cache, "cec-archiver", "parquetcheck-"+hex.EncodeToString(h.Sum(nil))[:12])
	bin := filepath.Join(out, "parquetcheck")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(out, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	if _, err := os.Stat(bin); err == nil {
		return bin, nil // built by another test process meanwhile
	}
	cmd := exec.Command("go", "build", "-C", dir, "-o", bin+".tmp", ".")
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-buildvcs=false", "CGO_ENABLED=1")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build tools/parquetcheck: %w: %s", err, b)
	}
	return bin, os.Rename(bin+".tmp", bin)
}

// duckResult is what parquetcheck printed for one query.
type duckResult struct {
	Columns []string
	Types   []string
	Rows    [][]any
}

func (r *duckResult) col(name string) int { return slices.Index(r.Columns, name) }

func duck(t *testing.T, query string) *duckResult {
	t.Helper()
	cmd := exec.Command(parquetcheck(t), query)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("parquetcheck %q: %v: %s", query, err, stderr.Bytes())
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.UseNumber()
	var head struct{ Columns, Types []string }
	if err := dec.Decode(&head); err != nil {
		t.Fatalf("parquetcheck output: %v", err)
	}
	r := &duckResult{Columns: head.Columns, Types: head.Types}
	for dec.More() {
		var row []any
		if err := dec.Decode(&row); err != nil {
			t.Fatalf("parquetcheck output: %v", err)
		}
		r.Rows = append(r.Rows, row)
	}
	return r
}

func sqlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// awkwardValues are put into the packages by rewritePackages: values a
// round trip must keep byte for byte.
var awkwardValues = []string{"", "Zoë Ñúñez", "张伟 客服", "مرحبا", "😀", "e\u0301", " padded ", `a,"b"`, "two\nlines", "tab\t"}

// rewritePackages sits between the client and the simulator's CC-FS and
// rewrites every CDR package it serves, deterministically (the same package
// gives the same bytes on every download): release_cause and task_result
// (columns nothing derives items from) take awkward and empty values, some
// call rows stop before pre_device_no, and some rows get extra columns.
func rewritePackages(t *testing.T, target string) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	proxy.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.URL.Path != cecwire.PathDownloadBillFile || resp.StatusCode != http.StatusOK {
			return nil
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if bytes.HasPrefix(body, []byte("PK")) {
			if body, err = rewriteZip(body); err != nil {
				return err
			}
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Set("Content-Length", fmt.Sprint(len(body)))
		return nil
	}
	srv := httptest.NewServer(proxy)
	t.Cleanup(srv.Close)
	return srv.URL
}

func rewriteZip(b []byte) ([]byte, error) {
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			return nil, err
		}
		rows, err := csv.NewReader(rc).ReadAll()
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.Name, err)
		}
		kind, col := cdr.KindRecord, slices.Index(cecwire.RecordColumns, "task_result")
		if strings.Contains(f.Name, "_call_") {
			kind, col = cdr.KindCall, slices.Index(cecwire.CallColumns, "release_cause")
		}
		for i := 1; i < len(rows); i++ { // rows[0] is the header
			r := rows[i]
			r[col] = awkwardValues[i%len(awkwardValues)]
			switch {
			case kind == cdr.KindCall && i%4 == 1:
				r = r[:len(cecwire.CallColumns)-1]
			case i%4 == 2:
				r = append(r, "extra ü", "", "x\ny")
			}
			rows[i] = r
		}
		w, err := zw.CreateHeader(&zip.FileHeader{Name: f.Name, Method: zip.Deflate, Modified: f.Modified})
		if err != nil {
			return nil, err
		}
		if err := csv.NewWriter(w).WriteAll(rows); err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// csvRow is one data row of an archived package, read with encoding/csv
// alone (not with package cdr, whose reader also feeds the writer).
type csvRow struct {
	file   string
	line   int
	fields []string
}

func packageCSV(t *testing.T, path string) map[cdr.Kind][]csvRow {
	t.Helper()
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	name := regexp.MustCompile(`_(call|record)_[0-9]+\.csv$`)
	files := slices.Clone(zr.File)
	slices.SortFunc(files, func(a, b *zip.File) int { return strings.Compare(a.Name, b.Name) })
	out := map[cdr.Kind][]csvRow{}
	for _, f := range files {
		m := name.FindStringSubmatch(f.Name)
		if m == nil {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(rc)
		if bom, _ := br.Peek(3); string(bom) == "\xEF\xBB\xBF" {
			br.Discard(3)
		}
		cr := csv.NewReader(br)
		cr.FieldsPerRecord = -1
		for first := true; ; first = false {
			rec, err := cr.Read()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", f.Name, err)
			}
			line, _ := cr.FieldPos(0)
			if first && (rec[0] == "developer") {
				continue
			}
			out[cdr.Kind(m[1])] = append(out[cdr.Kind(m[1])], csvRow{f.Name, line, rec})
		}
		rc.Close()
	}
	return out
}

// knownColumns are the CSV columns of kind that have a column of their own.
func knownColumns(kind cdr.Kind) []string {
	if kind == cdr.KindCall {
		return cecwire.CallColumns
	}
	return cecwire.RecordColumns
}

// checkParquetRows compares DuckDB's reading of one Parquet file with the
// CSV rows of its package, every column of every row, and returns what the
// rows held (for the caller to check the test proved something).
func checkParquetRows(t *testing.T, got *duckResult, want []csvRow, kind cdr.Kind, p checkpoint.Package) (empty, nonASCII, nulls, extras int) {
	t.Helper()
	if len(got.Rows) != len(want) {
		t.Fatalf("%s: DuckDB reads %d rows, the CSV files hold %d", p.BillFileName, len(got.Rows), len(want))
	}
	ts := func(tm time.Time) string { return tm.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano) }
	known := knownColumns(kind)
	for i, w := range want {
		row := got.Rows[i]
		at := func(name string) any { return row[got.col(name)] }
		where := fmt.Sprintf("%s %s line %d", p.BillFileName, w.file, w.line)
		for name, v := range map[string]any{
			"bill_file": p.BillFileName, "package_sha256": p.SHA256, "csv_file": w.file, "csv_line": json.Number(fmt.Sprint(w.line)),
			"window_begin": ts(p.Begin), "window_end": ts(p.End), "package_requested_at": ts(p.RequestedAt),
		} {
			if at(name) != v {
				t.Errorf("%s: %s = %v, want %v", where, name, at(name), v)
			}
		}
		for j, c := range known {
			v := at(c)
			switch {
			case j < len(w.fields) && v != w.fields[j]:
				t.Errorf("%s: %s = %q, CSV has %q", where, c, v, w.fields[j])
			case j >= len(w.fields) && v != nil:
				t.Errorf("%s: %s = %q, want null (the row has %d columns)", where, c, v, len(w.fields))
			}
			switch {
			case j >= len(w.fields):
				nulls++
			case w.fields[j] == "":
				empty++
			case strings.ContainsFunc(w.fields[j], func(r rune) bool { return r > 0x7f }):
				nonASCII++
			}
		}
		var extra []any
		for _, f := range w.fields[min(len(known), len(w.fields)):] {
			extra = append(extra, f)
		}
		if ge, _ := at("extra_columns").([]any); !slices.Equal(ge, extra) && !(len(ge) == 0 && len(extra) == 0) {
			t.Errorf("%s: extra_columns = %q, CSV has %q", where, at("extra_columns"), extra)
		}
		if len(extra) > 0 {
			extras++
		}
	}
	return empty, nonASCII, nulls, extras
}

// mirror copies the objects under prefix from the sink to dir (key →
// dir/key), reading them back through sink.Reader, and returns their
// digests by key.
func mirror(t *testing.T, r sink.Reader, prefix, dir string) map[string]string {
	t.Helper()
	ctx := testCtx(t)
	out := map[string]string{}
	for obj, err := range r.List(ctx, prefix) {
		if err != nil {
			t.Fatal(err)
		}
		rc, _, err := r.Open(ctx, obj.Key)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, filepath.FromSlash(obj.Key))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		_, err = io.Copy(io.MultiWriter(f, h), rc)
		rc.Close()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
		out[obj.Key] = hex.EncodeToString(h.Sum(nil))
	}
	return out
}

// objectLockSink is an S3 sink on a versitygw bucket with Object Lock.
func objectLockSink(t *testing.T) sink.Sink {
	t.Helper()
	srv := s3test.Start(t)
	s, err := s3.New(testCtx(t), s3.Options{
		Endpoint: srv.Endpoint, Region: srv.Region, Bucket: srv.NewBucket(t, true), PathStyle: true,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, SpoolDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestCDR_Parquet runs the cdr job on the simulator, with packages whose
// rows hold empty, non-ASCII, multi-line and quoted values, short rows and
// extra columns, into a directory sink and into versitygw with Object Lock,
// and reads every Parquet file back (through the sink) with DuckDB and with
// parquet-go: every column of every row equals the archived ZIP's CSV rows;
// the files are where docs/parquet.md says (Hive partitions that DuckDB
// reads as tenant, year, month, day), stored with their digest and
// metadata, with the documented column types; and the DuckDB queries of
// docs/parquet.md run on them.
func TestCDR_Parquet(t *testing.T) {
	for _, tc := range []struct {
		name string
		sink func(t *testing.T) sink.Sink
	}{
		{"dir", nil},
		{"s3 object lock", objectLockSink},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			var sk sink.Sink
			e := newEnv(t, envOptions{
				client: func(co *cecclient.Options) { co.FSURL = rewritePackages(t, co.FSURL) },
				sink: func(s sink.Sink) sink.Sink {
					if tc.sink != nil {
						s = tc.sink(t)
					}
					sk = s
					return s
				},
			})
			checkParquet(t, e, sk)
		})
	}
}

func checkParquet(t *testing.T, e *env, sk sink.Sink) {
	ctx := testCtx(t)
	if _, err := e.a.Run(ctx, config.JobCDR); err != nil {
		t.Fatal(err)
	}
	pkgs, err := e.store.Packages(ctx, checkpoint.StateDone)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) != defaultTestDays {
		t.Fatalf("%d packages done, want %d", len(pkgs), defaultTestDays)
	}
	reader, ok := sk.(sink.Reader)
	if !ok {
		t.Fatalf("%T is no sink.Reader", sk)
	}
	local := t.TempDir()
	objs := mirror(t, reader, testPrefix+"/", local)
	var empty, nonASCII, nulls, extras, files int
	for _, p := range pkgs {
		want := packageCSV(t, filepath.Join(local, filepath.FromSlash(p.Key)))
		keys, err := e.a.parquetKeys(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, kind := range parquetKinds {
			key := keys[kind]
			day := p.Begin.UTC()
			wantKey := fmt.Sprintf("%s/parquet/cdr/%s/tenant=%s/year=%04d/month=%02d/day=%02d/%s.parquet", testPrefix,
				cdr.ParquetTable(kind), testTenant, day.Year(), day.Month(), day.Day(), strings.TrimSuffix(p.BillFileName, ".zip"))
			if key != wantKey {
				t.Errorf("key %s, want %s", key, wantKey)
			}
			if _, ok := objs[key]; !ok {
				t.Fatalf("%s: no object %s", p.BillFileName, key)
			}
			files++
			path := filepath.Join(local, filepath.FromSlash(key))
			got := duck(t, "SELECT * FROM read_parquet("+sqlString(path)+") ORDER BY csv_file, csv_line")
			a, b, c, d := checkParquetRows(t, got, want[kind], kind, p)
			empty, nonASCII, nulls, extras = empty+a, nonASCII+b, nulls+c, extras+d
			checkParquetTypes(t, path, kind)

			// parquet-go's own reader gives the same rows.
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			st, _ := f.Stat()
			var i int
			err = cdr.ReadParquet(f, st.Size(), kind, func(r cdr.ParquetRow) error {
				if i >= len(want[kind]) || !slices.Equal(r.Fields, want[kind][i].fields) || r.Line != want[kind][i].line {
					return fmt.Errorf("row %d (%s) differs from the CSV", i, r)
				}
				i++
				return nil
			})
			f.Close()
			if err != nil || i != len(want[kind]) {
				t.Errorf("%s: parquet-go read %d of %d rows: %v", key, i, len(want[kind]), err)
			}
			// Stored through the sink like the package's other objects: its
			// digest recorded, its metadata naming the package.
			obj, err := sk.Stat(ctx, key)
			if err != nil || obj.SHA256 != objs[key] || obj.Metadata["kind"] != "cdr-parquet" ||
				obj.Metadata["package-sha256"] != p.SHA256 || obj.Metadata["table"] != cdr.ParquetTable(kind) {
				t.Errorf("%s: stat %+v (%v), want its digest %s and metadata naming package %s", key, obj, err, objs[key], p.SHA256)
			}
		}
	}
	if files != 2*len(pkgs) || empty == 0 || nonASCII == 0 || nulls == 0 || extras == 0 {
		t.Errorf("%d files; %d empty, %d non-ASCII values, %d nulls, %d rows with extra columns: the test proves little",
			files, empty, nonASCII, nulls, extras)
	}

	t.Run("hive partitions", func(t *testing.T) {
		root := filepath.Join(local, testPrefix, "parquet", "cdr", "calls")
		got := duck(t, "SELECT tenant, year, month, day, count(DISTINCT bill_file) FROM read_parquet("+
			sqlString(root+"/*/*/*/*/*.parquet")+", hive_partitioning = true, "+
			"hive_types = {'year': INTEGER, 'month': INTEGER, 'day': INTEGER}) GROUP BY ALL ORDER BY ALL")
		var want [][]any
		for _, p := range pkgs {
			d := p.Begin.UTC()
			want = append(want, []any{testTenant, json.Number(fmt.Sprint(d.Year())), json.Number(fmt.Sprint(int(d.Month()))),
				json.Number(fmt.Sprint(d.Day())), json.Number("1")})
		}
		if fmt.Sprint(got.Rows) != fmt.Sprint(want) {
			t.Errorf("partitions %v, want %v", got.Rows, want)
		}
	})

	t.Run("docs queries", func(t *testing.T) {
		queries := docQueries(t)
		if len(queries) < 5 {
			t.Fatalf("%d DuckDB queries in docs/parquet.md and docs/operations.md, want the examples", len(queries))
		}
		archive := filepath.Join(local, testPrefix)
		for _, q := range queries {
			q = strings.ReplaceAll(q, "'your-tenant'", sqlString(testTenant))
			got := duck(t, strings.ReplaceAll(q, "'archive/", "'"+archive+"/"))
			if len(got.Rows) == 0 {
				t.Errorf("docs query returns no rows:\n%s", q)
			}
		}
	})
}

// docQueries are the DuckDB examples of docs/parquet.md and
// docs/operations.md: the ```sql blocks whose first line is "-- duckdb".
// They read 'archive/…', the sink's root, and name tenant 'your-tenant'.
func docQueries(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, doc := range []string{"parquet.md", "operations.md"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "docs", doc))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile("(?s)```sql\n(-- duckdb\n.*?)```").FindAllStringSubmatch(string(b), -1) {
			out = append(out, m[1])
		}
	}
	return out
}

// checkParquetTypes compares the file's schema, as DuckDB reads it, with
// docs/parquet.md: strings are UTF8 byte arrays, required except a CSV
// column a row may stop before; the times are UTC-adjusted microsecond
// timestamps; csv_line is an INT64; extra_columns a list of strings.
func checkParquetTypes(t *testing.T, path string, kind cdr.Kind) {
	t.Helper()
	got := duck(t, "SELECT name, repetition_type, coalesce(converted_type, ''), coalesce(duckdb_type, '') FROM parquet_schema("+sqlString(path)+")")
	var lines []string
	for _, r := range got.Rows[1:] { // the root
		lines = append(lines, fmt.Sprint(r...))
	}
	want := []string{
		"bill_fileREQUIREDUTF8VARCHAR", "package_sha256REQUIREDUTF8VARCHAR",
		"window_beginREQUIREDTIMESTAMP_MICROSTIMESTAMP WITH TIME ZONE", "window_endREQUIREDTIMESTAMP_MICROSTIMESTAMP WITH TIME ZONE",
		"package_requested_atREQUIREDTIMESTAMP_MICROSTIMESTAMP WITH TIME ZONE",
		"csv_fileREQUIREDUTF8VARCHAR", "csv_lineREQUIREDINT_64BIGINT",
	}
	for i, c := range knownColumns(kind) {
		rep := "REQUIRED"
		if kind == cdr.KindCall && i >= 20 {
			rep = "OPTIONAL"
		}
		want = append(want, c+rep+"UTF8VARCHAR")
	}
	want = append(want, "extra_columnsREQUIREDLIST", "listREPEATED", "elementREQUIREDUTF8VARCHAR")
	if !slices.Equal(lines, want) {
		t.Errorf("%s schema:\n%s\nwant:\n%s", path, strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

// failParquetSink fails the first Put of a recordings Parquet file and
// counts the Puts of each Parquet key and how they ended.
type failParquetSink struct {
	sink.Sink
	mu      sync.Mutex
	failed  bool
	puts    map[string][]string // key → "stored" | "existed" | "failed"
	failKey string
}

func (s *failParquetSink) Put(ctx context.Context, key string, body io.Reader, size int64, meta sink.Meta) (sink.Object, error) {
	if !strings.HasPrefix(key, parquetDir) {
		return s.Sink.Put(ctx, key, body, size, meta)
	}
	s.mu.Lock()
	fail := !s.failed && strings.HasPrefix(key, parquetDir+"recordings/")
	if fail {
		s.failed, s.failKey = true, key
	}
	s.mu.Unlock()
	var obj sink.Object
	err := errors.New("injected: store unavailable")
	if !fail {
		obj, err = s.Sink.Put(ctx, key, body, size, meta)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case err != nil:
		s.puts[key] = append(s.puts[key], "failed")
	case obj.Existed:
		s.puts[key] = append(s.puts[key], "existed")
	default:
		s.puts[key] = append(s.puts[key], "stored")
	}
	return obj, err
}

// TestCDR_ParquetFailure: a Parquet file the sink cannot store fails the
// package like any other object (failed, retried, not done, the error names
// the table and the package); the rerun of the same package stores the
// missing file and finds the one stored before unchanged (the bytes are
// deterministic), so no Parquet object is stored twice or differently.
func TestCDR_ParquetFailure(t *testing.T) {
	fs := &failParquetSink{puts: map[string][]string{}}
	e := newEnv(t, envOptions{sink: func(s sink.Sink) sink.Sink { fs.Sink = s; return fs }})
	ctx := testCtx(t)
	rep, err := e.a.Run(ctx, config.JobCDR)
	if err != nil {
		t.Fatal(err)
	}
	if rep.PackagesFailed != 1 || len(rep.Errors) != 1 || !strings.Contains(rep.Errors[0], "store parquet recordings of ") ||
		!strings.Contains(rep.Errors[0], "injected: store unavailable") {
		t.Fatalf("first run: %d packages failed, errors %q; want 1 naming the recordings Parquet file", rep.PackagesFailed, rep.Errors)
	}
	failed, err := e.store.Packages(ctx, checkpoint.StateFailed)
	if err != nil || len(failed) != 1 || !strings.Contains(failed[0].LastError, "store parquet recordings") {
		t.Fatalf("failed packages %+v (%v), want the one whose Parquet file failed", failed, err)
	}
	keys, err := e.a.parquetKeys(failed[0])
	if err != nil {
		t.Fatal(err)
	}
	if keys[cdr.KindRecord] != fs.failKey {
		t.Fatalf("failed key %s, want the package's %s", fs.failKey, keys[cdr.KindRecord])
	}
	callsKey := keys[cdr.KindCall]
	before := e.objects()[callsKey]
	if before == "" {
		t.Fatalf("the calls file %s was not stored before the failure", callsKey)
	}
	if wm, ok, _ := e.store.Watermark(ctx, config.JobCDR); ok && !wm.Before(failed[0].End) {
		t.Errorf("watermark %v moved past the failed window", wm)
	}

	rep, err = e.a.Run(ctx, config.JobCDR)
	if err != nil || rep.PackagesFailed != 0 {
		t.Fatalf("second run: %v, %d failed %q", err, rep.PackagesFailed, rep.Errors)
	}
	done, err := e.store.Packages(ctx, checkpoint.StateDone)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(done, func(p checkpoint.Package) bool { return p.ID == failed[0].ID }) {
		t.Errorf("the failed package %s was not resumed and completed: done %+v", failed[0].BillFileName, done)
	}
	if got := fs.puts[callsKey]; !slices.Equal(got, []string{"stored", "existed"}) {
		t.Errorf("Puts of %s: %v, want stored then existed (the same bytes)", callsKey, got)
	}
	if got := fs.puts[fs.failKey]; !slices.Equal(got, []string{"failed", "stored"}) {
		t.Errorf("Puts of %s: %v, want failed then stored", fs.failKey, got)
	}
	objs := e.objects()
	if objs[callsKey] != before {
		t.Errorf("%s changed", callsKey)
	}
	stored := 0 // packages stored in full: an unchanged one has no files of its own
	for _, p := range done {
		if p.Key != "" {
			stored++
		}
	}
	if n := countPrefix(objs, parquetDir); n != 2*stored {
		t.Errorf("%d Parquet objects for %d packages stored, want 2 each", n, stored)
	}
}
