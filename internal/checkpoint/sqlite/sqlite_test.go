package sqlite

import (
	"bufio"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
	"github.com/cec-archiver/cec-archiver/internal/checkpoint/checkpointtest"
)

// Environment of TestHelperProcess, the child process the lock and crash
// tests start from this test binary.
const (
	envHelper = "CHECKPOINT_SQLITE_HELPER" // "lock", "churn" or "groupchurn"
	envPath   = "CHECKPOINT_SQLITE_PATH"
)

// testOwner claims the items of the store's own tests; its lease outlives
// every test.
const testOwner = "test-host-1-00000000"

var testClaimer = checkpoint.Claimer{Owner: testOwner, Lease: time.Hour}

func dbPath(t testing.TB) string {
	return filepath.Join(t.TempDir(), "state", "checkpoint.db")
}

func mustOpen(t testing.TB, path string, o Options) *Store {
	t.Helper()
	s, err := Open(path, o)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStore_Conformance(t *testing.T) {
	checkpointtest.Run(t, checkpointtest.Backend{Open: func(t *testing.T, now func() time.Time) checkpoint.Store {
		s, err := Open(dbPath(t), Options{Now: now})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s
	}})
}

func TestOpen_Files(t *testing.T) {
	path := dbPath(t)
	s := mustOpen(t, path, Options{})
	for p, want := range map[string]os.FileMode{filepath.Dir(path): 0o700 | os.ModeDir, path: 0o600, path + ".lock": 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s mode = %v, want %v", p, fi.Mode(), want)
		}
	}
	b, err := os.ReadFile(path + ".lock")
	if err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
		t.Errorf("lock file = %q, %v; want our pid %d", b, err, os.Getpid())
	}
	t.Run("pragmas", func(t *testing.T) {
		for pragma, want := range map[string]string{"journal_mode": "wal", "synchronous": "2", "foreign_keys": "1", "busy_timeout": "5000"} {
			var got string
			if err := s.db.QueryRow("PRAGMA " + pragma).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("PRAGMA %s = %s, want %s", pragma, got, want)
			}
		}
	})
	t.Run("empty path", func(t *testing.T) {
		if _, err := Open("", Options{}); err == nil {
			t.Fatal("Open(\"\") succeeded")
		}
	})
	t.Run("odd path", func(t *testing.T) {
		odd := filepath.Join(t.TempDir(), "a dir?x=1#frag%20", "state.db")
		s := mustOpen(t, odd, Options{})
		if _, err := s.AddItems(t.Context(), []checkpoint.Item{{Kind: "agent", UpstreamID: "x"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(odd); err != nil {
			t.Fatalf("database not at the literal path: %v", err)
		}
	})
}

func TestOpen_Reopen(t *testing.T) {
	path := dbPath(t)
	ctx := t.Context()
	loc := time.FixedZone("UTC+8", 8*3600)
	begin := time.Date(2026, 3, 1, 0, 0, 0, 5, loc)
	end := begin.Add(time.Hour)

	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	pid, err := s.CreatePackage(ctx, checkpoint.Package{Begin: begin, End: end, ResponseID: "r"})
	if err != nil {
		t.Fatal(err)
	}
	calls := []checkpoint.Call{{CallID: "c1", Day: "2026-03-01", Begin: begin, VDN: "v", AgentID: "a"}}
	items := []checkpoint.Item{
		{Kind: checkpoint.KindAgent, UpstreamID: "f1", CallID: "c1", Day: "2026-03-01", Key: "k/f1", Args: json.RawMessage(`{"file":"f1.wav"}`)},
		{Kind: checkpoint.KindAgent, UpstreamID: "f2", CallID: "c1", Day: "2026-03-01", Key: "k/f2"},
		{Kind: checkpoint.KindIVRLookup, UpstreamID: "c1", CallID: "c1", Day: "2026-03-01", State: checkpoint.StateAbsent, Reason: "no ivr"},
	}
	if _, err := s.CompletePackage(ctx, checkpoint.Package{ID: pid, ResponseID: "r", Key: "pk", SHA256: "ps", Size: 9, Calls: 1, Items: 3}, calls, items); err != nil {
		t.Fatal(err)
	}
	claimed, err := s.Claim(ctx, testClaimer, nil, begin, 0)
	if err != nil || len(claimed) != 2 {
		t.Fatalf("Claim = %d, %v", len(claimed), err)
	}
	if err := s.Done(ctx, testOwner, claimed[0].ID, "k/f1", 11, "d1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Fail(ctx, testOwner, claimed[1].ID, "oops", end, 5); err != nil {
		t.Fatal(err)
	}
	if err := s.SetWatermark(ctx, "cdr", end); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLedger(ctx, "2026-03-01", "", "ls", "lk"); err != nil {
		t.Fatal(err)
	}
	wantItems, err := s.Items(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantPkg, _, err := s.LastDonePackage(ctx, begin, end)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	for _, ro := range []bool{false, true} {
		t.Run(fmt.Sprint("ReadOnly=", ro), func(t *testing.T) {
			s := mustOpen(t, path, Options{ReadOnly: ro})
			p, ok, err := s.LastDonePackage(ctx, begin, end)
			if err != nil || !ok || p != wantPkg {
				t.Fatalf("package after reopen = %+v ok %v err %v, want %+v", p, ok, err, wantPkg)
			}
			got, err := s.Items(ctx)
			if err != nil || len(got) != len(wantItems) {
				t.Fatalf("Items after reopen = %d, %v", len(got), err)
			}
			for i := range got {
				g, w := got[i], wantItems[i]
				if string(g.Args) != string(w.Args) {
					t.Fatalf("item %d params %s, want %s", g.ID, g.Args, w.Args)
				}
				g.Args, w.Args = nil, nil
				if !itemEqual(g, w) {
					t.Fatalf("item after reopen = %+v, want %+v", g, w)
				}
			}
			c, err := s.DayCalls(ctx, "2026-03-01")
			if err != nil || len(c) != 1 || c[0].CallID != "c1" || !c[0].Begin.Equal(begin) || c[0].VDN != "v" || c[0].AgentID != "a" {
				t.Fatalf("DayCalls after reopen = %+v, %v", c, err)
			}
			if w, ok, err := s.Watermark(ctx, "cdr"); err != nil || !ok || !w.Equal(end) {
				t.Fatalf("Watermark after reopen = %v ok %v err %v", w, ok, err)
			}
			if sum, key, ok, err := s.Ledger(ctx, "2026-03-01"); err != nil || !ok || sum != "ls" || key != "lk" {
				t.Fatalf("Ledger after reopen = %q %q ok %v err %v", sum, key, ok, err)
			}
		})
	}
}

// itemEqual compares items except Args.
func itemEqual(a, b checkpoint.Item) bool {
	return a.ID == b.ID && a.Kind == b.Kind && a.UpstreamID == b.UpstreamID && a.CallID == b.CallID && a.Day == b.Day &&
		a.Key == b.Key && a.State == b.State && a.Attempts == b.Attempts && a.NextAttemptAt.Equal(b.NextAttemptAt) &&
		a.LastError == b.LastError && a.Reason == b.Reason && a.Size == b.Size && a.SHA256 == b.SHA256 &&
		a.CreatedAt.Equal(b.CreatedAt) && a.UpdatedAt.Equal(b.UpdatedAt)
}

func TestOpen_Lock(t *testing.T) {
	t.Run("same process", func(t *testing.T) {
		path := dbPath(t)
		s := mustOpen(t, path, Options{})
		_, err := Open(path, Options{})
		var le *checkpoint.LockedError
		if !errors.As(err, &le) || !errors.Is(err, checkpoint.ErrLocked) {
			t.Fatalf("second Open = %v, want *LockedError", err)
		}
		if le.PID != os.Getpid() || le.Path != path {
			t.Fatalf("LockedError = %+v, want pid %d path %s", le, os.Getpid(), path)
		}
		if pid, held, err := Held(path); err != nil || !held || pid != os.Getpid() {
			t.Fatalf("Held while open = %d, %v, %v; want our pid, held", pid, held, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if _, held, err := Held(path); err != nil || held {
			t.Fatalf("Held after Close = %v, %v; want not held", held, err)
		}
		s2 := mustOpen(t, path, Options{})
		if _, err := s2.AddItems(t.Context(), []checkpoint.Item{{Kind: "agent", UpstreamID: "x"}}); err != nil {
			t.Fatalf("write after taking over the lock: %v", err)
		}
	})
	t.Run("never opened", func(t *testing.T) {
		if _, held, err := Held(dbPath(t)); err != nil || held {
			t.Fatalf("Held of a state never opened = %v, %v; want not held", held, err)
		}
	})
	t.Run("other process", func(t *testing.T) {
		path := dbPath(t)
		cmd, lines := startHelper(t, "lock", path)
		if line := next(t, lines); line != "locked" {
			t.Fatalf("helper said %q, want locked", line)
		}
		_, err := Open(path, Options{})
		var le *checkpoint.LockedError
		if !errors.As(err, &le) {
			t.Fatalf("Open while child holds the lock = %v, want *LockedError", err)
		}
		if le.PID != cmd.Process.Pid {
			t.Fatalf("LockedError.PID = %d, want child %d", le.PID, cmd.Process.Pid)
		}
		if !strings.Contains(err.Error(), strconv.Itoa(cmd.Process.Pid)) {
			t.Fatalf("error %q does not name the pid", err)
		}
		t.Run("read-only meanwhile", func(t *testing.T) {
			ro := mustOpen(t, path, Options{ReadOnly: true})
			items, err := ro.Items(t.Context())
			if err != nil || len(items) != 1 || items[0].UpstreamID != "held" {
				t.Fatalf("read-only Items = %+v, %v; want the child's item", items, err)
			}
		})
		if pid, held, err := Held(path); err != nil || !held || pid != cmd.Process.Pid {
			t.Fatalf("Held while the child holds it = %d, %v, %v; want %d, held", pid, held, err, cmd.Process.Pid)
		}
		kill(t, cmd)
		if _, held, err := Held(path); err != nil || held {
			t.Fatalf("Held after the child was killed = %v, %v; want not held", held, err)
		}
		s := mustOpen(t, path, Options{})
		if n, err := s.RecoverInProgress(t.Context(), testOwner); err != nil || n != 0 {
			t.Fatalf("RecoverInProgress after child died = %d, %v", n, err)
		}
	})
}

func TestOpen_ReadOnly(t *testing.T) {
	ctx := t.Context()
	t.Run("missing file", func(t *testing.T) {
		path := dbPath(t)
		_, err := Open(path, Options{ReadOnly: true})
		if !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("read-only Open of missing file = %v, want ErrNotExist", err)
		}
		if _, err := os.Stat(filepath.Dir(path)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("read-only Open created the directory: %v", err)
		}
	})
	t.Run("not migrated", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "empty.db")
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(path, Options{ReadOnly: true}); !errors.Is(err, ErrSchemaTooOld) {
			t.Fatalf("read-only Open of empty file = %v, want ErrSchemaTooOld", err)
		}
	})
	path := dbPath(t)
	rw := mustOpen(t, path, Options{})
	if _, err := rw.AddItems(ctx, []checkpoint.Item{{Kind: "agent", UpstreamID: "a"}}); err != nil {
		t.Fatal(err)
	}
	ro := mustOpen(t, path, Options{ReadOnly: true})
	t.Run("sees commits", func(t *testing.T) {
		if _, err := rw.AddItems(ctx, []checkpoint.Item{{Kind: "agent", UpstreamID: "b"}}); err != nil {
			t.Fatal(err)
		}
		items, err := ro.Items(ctx)
		if err != nil || len(items) != 2 {
			t.Fatalf("read-only Items = %d, %v; want 2", len(items), err)
		}
		if d, err := ro.Days(ctx); err != nil || len(d) != 1 {
			t.Fatalf("read-only Days = %+v, %v", d, err)
		}
	})
	t.Run("refuses writes", func(t *testing.T) {
		writes := map[string]func() error{
			"AddItems": func() error {
				_, err := ro.AddItems(ctx, []checkpoint.Item{{Kind: "agent", UpstreamID: "c"}})
				return err
			},
			"Claim":   func() error { _, err := ro.Claim(ctx, testClaimer, nil, time.Now(), 0); return err },
			"Recover": func() error { _, err := ro.RecoverInProgress(ctx, testOwner); return err },
			"Create":  func() error { _, err := ro.CreatePackage(ctx, checkpoint.Package{}); return err },
			"Ledger":  func() error { return ro.SetLedger(ctx, "d", "", "s", "k") },
			"Mark":    func() error { return ro.SetWatermark(ctx, "j", time.Now()) },
		}
		for name, w := range writes {
			if err := w(); !errors.Is(err, ErrReadOnly) {
				t.Errorf("%s on read-only store = %v, want ErrReadOnly", name, err)
			}
		}
		// Below the Store's own check, the connection itself is read-only.
		if _, err := ro.db.Exec(`DELETE FROM items`); err == nil {
			t.Error("raw DELETE on the read-only connection succeeded")
		}
		if items, _ := rw.Items(ctx); len(items) != 2 {
			t.Errorf("items after refused writes = %d, want 2", len(items))
		}
	})
}

func TestOpen_FutureSchema(t *testing.T) {
	path := dbPath(t)
	s := mustOpen(t, path, Options{})
	if _, err := s.db.Exec(fmt.Sprintf("PRAGMA user_version = %d", len(migrations())+1)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, ro := range []bool{false, true} {
		_, err := Open(path, Options{ReadOnly: ro})
		if !errors.Is(err, ErrSchemaTooNew) {
			t.Fatalf("Open(ReadOnly=%v) of a future schema = %v, want ErrSchemaTooNew", ro, err)
		}
		if !strings.Contains(err.Error(), path) {
			t.Fatalf("error %q does not name the file", err)
		}
	}
	// The refused read-write Open released its lock.
	if _, err := os.Stat(path + ".lock"); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, Options{}); errors.Is(err, checkpoint.ErrLocked) {
		t.Fatalf("lock leaked by a refused Open: %v", err)
	}
}

func TestOpen_Migrate(t *testing.T) {
	path := dbPath(t)
	s := mustOpen(t, path, Options{})
	v, err := schemaVersion(t.Context(), s.db)
	if err != nil || v != len(migrations()) {
		t.Fatalf("schema version = %d, %v; want %d", v, err, len(migrations()))
	}
	s.Close()
	s = mustOpen(t, path, Options{}) // re-running migrations is a no-op
	if v, _ := schemaVersion(t.Context(), s.db); v != len(migrations()) {
		t.Fatalf("schema version after reopen = %d", v)
	}
}

func TestStore_TimeRange(t *testing.T) {
	s := mustOpen(t, dbPath(t), Options{})
	far := time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := s.SetWatermark(t.Context(), "j", far); err == nil {
		t.Fatal("SetWatermark(year 3000) succeeded; it cannot round-trip")
	}
	if _, err := s.Claim(t.Context(), testClaimer, nil, far, 0); err == nil {
		t.Fatal("Claim(year 3000) succeeded")
	}
}

func TestStore_Now(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	s := mustOpen(t, dbPath(t), Options{Now: func() time.Time { return now }})
	if _, err := s.AddItems(t.Context(), []checkpoint.Item{{Kind: "agent", UpstreamID: "a", Day: "2026-05-01"}}); err != nil {
		t.Fatal(err)
	}
	items, err := s.Items(t.Context())
	if err != nil || len(items) != 1 || !items[0].CreatedAt.Equal(now) || !items[0].UpdatedAt.Equal(now) {
		t.Fatalf("Items = %+v, %v; want stamped %v", items, err, now)
	}
	days, err := s.Days(t.Context())
	if err != nil || len(days) != 1 || !days[0].Updated.Equal(now) {
		t.Fatalf("Days = %+v, %v", days, err)
	}
}

// TestStore_Crash kills a child process doing claim/done cycles at arbitrary
// points and checks that the database never holds a half-applied change.
func TestStore_Crash(t *testing.T) {
	path := dbPath(t)
	reportedDone := map[int64]bool{}
	adds := 0
	for i := range 20 {
		cmd, lines := startHelper(t, "churn", path)
		// Every fifth child dies during start-up (Open, migration,
		// RecoverInProgress); the others after a varying number of cycles.
		if i%5 != 0 {
			for range 1 + (i*7)%40 {
				line, ok := <-lines
				if !ok {
					t.Fatalf("child %d exited early: %v", i, cmd.Wait())
				}
				f := strings.Fields(line)
				switch {
				case len(f) == 2 && f[0] == "done":
					id, _ := strconv.ParseInt(f[1], 10, 64)
					reportedDone[id] = true
				case len(f) == 1 && f[0] == "added":
					adds++
				}
			}
		}
		// Decouple the kill from the line just read, so that it lands
		// anywhere in the child's cycle, inside a transaction or between
		// two. The delay only places the fault; nothing is timed.
		time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
		kill(t, cmd)
	}
	t.Logf("children reported %d adds and %d dones", adds, len(reportedDone))

	s := mustOpen(t, path, Options{})
	var check string
	if err := s.db.QueryRow("PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check = %q, %v", check, err)
	}
	items, err := s.Items(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(items)%2 != 0 {
		t.Errorf("%d items: an AddItems of two was half applied", len(items))
	}
	if len(items) < 2*adds {
		t.Errorf("%d items, but the children reported %d committed adds of two", len(items), adds)
	}
	for _, it := range items {
		if !knownState(it.State) {
			t.Errorf("item %d in unknown state %q", it.ID, it.State)
		}
		switch it.State {
		case checkpoint.StateDone:
			if it.Key != "k/"+it.UpstreamID || it.SHA256 != digest(it.UpstreamID) || it.Size != int64(len(it.UpstreamID)) {
				t.Errorf("done item without its key/size/digest: %+v", it)
			}
		case checkpoint.StateFailed, checkpoint.StateDead:
			if it.Attempts == 0 || it.LastError == "" {
				t.Errorf("%s item without attempts or error: %+v", it.State, it)
			}
			if it.State == checkpoint.StateDead && it.Attempts < churnMaxAttempts {
				t.Errorf("dead item with %d attempts", it.Attempts)
			}
		default:
			if it.Key != "" || it.SHA256 != "" {
				t.Errorf("%s item carries done fields: %+v", it.State, it)
			}
		}
		if it.State == checkpoint.StateDone {
			delete(reportedDone, it.ID)
		}
	}
	if len(reportedDone) != 0 {
		t.Errorf("items reported done by a child are not done: %v", reportedDone)
	}
	if adds == 0 {
		t.Fatal("the children made no progress")
	}
}

const churnMaxAttempts = 3

func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestHelperProcess is not a test: it is the child process the lock and
// crash tests start from this binary. It does nothing unless envHelper is
// set.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(envHelper)
	if mode == "" {
		return
	}
	path := os.Getenv(envPath)
	ctx := context.Background()
	s, err := Open(path, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper open:", err)
		os.Exit(2)
	}
	die := func(err error) {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(3)
	}
	switch mode {
	case "lock":
		if _, err := s.AddItems(ctx, []checkpoint.Item{{Kind: "agent", UpstreamID: "held"}}); err != nil {
			die(err)
		}
		fmt.Println("locked")
		io.Copy(io.Discard, os.Stdin) // until the parent kills us
		os.Exit(0)
	case "groupchurn":
		groupChurn(s, die)
	case "churn":
		if _, err := s.RecoverInProgress(ctx, testOwner); err != nil {
			die(err)
		}
		pid := os.Getpid()
		for n := 0; ; n++ {
			batch := []checkpoint.Item{
				{Kind: checkpoint.KindAgent, UpstreamID: fmt.Sprintf("p%d-%da", pid, n), Day: "2026-03-01"},
				{Kind: checkpoint.KindIVR, UpstreamID: fmt.Sprintf("p%d-%db", pid, n), Day: "2026-03-02"},
			}
			if _, err := s.AddItems(ctx, batch); err != nil {
				die(err)
			}
			fmt.Println("added")
			got, err := s.Claim(ctx, testClaimer, nil, time.Now(), 3)
			if err != nil {
				die(err)
			}
			for _, it := range got {
				switch it.ID % 4 {
				case 0, 1:
					if err := s.Done(ctx, testOwner, it.ID, "k/"+it.UpstreamID, int64(len(it.UpstreamID)), digest(it.UpstreamID)); err != nil {
						die(err)
					}
					fmt.Println("done", it.ID)
				case 2:
					if _, err := s.Fail(ctx, testOwner, it.ID, "transient", time.Now(), churnMaxAttempts); err != nil {
						die(err)
					}
				case 3:
					if err := s.Defer(ctx, testOwner, it.ID, time.Now(), "later"); err != nil {
						die(err)
					}
				}
			}
		}
	}
	die(fmt.Errorf("unknown helper mode %q", mode))
}

// startHelper runs TestHelperProcess in a child and returns it with a
// channel of its stdout lines (closed at EOF). The child is killed at the
// end of the test if still running.
func startHelper(t *testing.T, mode, path string) (*exec.Cmd, <-chan string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), envHelper+"="+mode, envPath+"="+path)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		io.Copy(io.Discard, out)
	}()
	return cmd, lines
}

func next(t *testing.T, lines <-chan string) string {
	t.Helper()
	line, ok := <-lines
	if !ok {
		t.Fatal("helper exited without output")
	}
	return line
}

// kill SIGKILLs the child and waits for it, so that its lock is gone.
func kill(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
}

func BenchmarkStore_ClaimDone(b *testing.B) {
	s := mustOpen(b, dbPath(b), Options{})
	ctx := context.Background()
	batch := make([]checkpoint.Item, 0, 1000)
	for i := 0; i < b.N; i++ {
		batch = append(batch, checkpoint.Item{Kind: checkpoint.KindAgent, UpstreamID: strconv.Itoa(i), Day: "2026-03-01"})
		if len(batch) == cap(batch) || i == b.N-1 {
			if _, err := s.AddItems(ctx, batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	now := time.Now()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		got, err := s.Claim(ctx, testClaimer, nil, now, 1)
		if err != nil || len(got) != 1 {
			b.Fatalf("Claim = %d, %v", len(got), err)
		}
		if err := s.Done(ctx, testOwner, got[0].ID, "k", 1, "s"); err != nil {
			b.Fatal(err)
		}
	}
}

// TestOpen_NewFileAppearsInitialised: a new state file is built under a
// temporary name and appears only migrated; a leftover of a process killed
// while creating one is cleared.
func TestOpen_NewFileAppearsInitialised(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.db")
	if err := os.WriteFile(path+".init", []byte("half-made by a killed process"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := mustOpen(t, path, Options{})
	if v, err := schemaVersion(t.Context(), s.db); err != nil || v != len(migrations()) {
		t.Fatalf("schema version = %d, %v; want %d", v, err, len(migrations()))
	}
	for _, p := range []string{path + ".init", path + ".init-wal", path + ".init-shm"} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind (%v)", p, err)
		}
	}
	// A reader opening it while the writer runs finds the newest schema.
	ro, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only open of a new state: %v", err)
	}
	ro.Close()
	s.Close()
}

// TestOpen_MigrateLeases: a state written before migration 5, with items a
// killed archiver left in progress (no owner, no lease), migrates to the
// current version; those items are due at once and RecoverInProgress releases
// them whoever calls it, while their other columns are kept.
func TestOpen_MigrateLeases(t *testing.T) {
	path := dbPath(t)
	s := mustOpen(t, path, Options{})
	if _, err := s.AddItems(t.Context(), []checkpoint.Item{
		{Kind: checkpoint.KindAgent, UpstreamID: "a", Day: "2026-03-01", Key: "k/a"},
		{Kind: checkpoint.KindAgent, UpstreamID: "b", Day: "2026-03-01", Key: "k/b"},
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, stmt := range []string{
		`DROP INDEX items_claim`, `CREATE INDEX items_due ON items (state, next_attempt_at)`,
		`DROP TABLE job_runs`, `DROP TABLE job_successes`, `DROP TABLE leases`, `ALTER TABLE items DROP COLUMN owner`, `ALTER TABLE items DROP COLUMN lease_until`,
		`UPDATE items SET state = 'in_progress', attempts = 2 WHERE upstream_id = 'a'`, `PRAGMA user_version = 4`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	db.Close()

	s = mustOpen(t, path, Options{})
	if v, err := schemaVersion(t.Context(), s.db); err != nil || v != len(migrations()) {
		t.Fatalf("schema version = %d, %v; want %d", v, err, len(migrations()))
	}
	got, err := s.Claim(t.Context(), testClaimer, nil, time.Time{}, 0)
	if err != nil || len(got) != 2 {
		t.Fatalf("Claim after the migration = %d items, %v; want both (the one left in progress has no lease)", len(got), err)
	}
	if got[0].UpstreamID != "a" || got[0].Attempts != 2 || got[0].Owner != testOwner {
		t.Fatalf("the item left in progress, claimed: %+v", got[0])
	}
	if ok, err := s.TryLease(t.Context(), "janitor", testOwner, time.Minute); err != nil || !ok {
		t.Fatalf("TryLease after the migration = %v, %v", ok, err)
	}
}

// TestOpen_ExpiresDeadProcessLeases: the lock admits one process, so the
// claims and leases a killed process left are expired at the next Open:
// RecoverInProgress with a new owner releases its items, and its named
// leases are free.
func TestOpen_ExpiresDeadProcessLeases(t *testing.T) {
	path := dbPath(t)
	s := mustOpen(t, path, Options{})
	if _, err := s.AddItems(t.Context(), []checkpoint.Item{{Kind: checkpoint.KindAgent, UpstreamID: "a", Day: "2026-03-01"}}); err != nil {
		t.Fatal(err)
	}
	old := checkpoint.Claimer{Owner: "dead-host-1-deadbeef", Lease: 24 * time.Hour}
	if got, err := s.Claim(t.Context(), old, nil, time.Now(), 0); err != nil || len(got) != 1 {
		t.Fatalf("Claim = %v, %v", got, err)
	}
	if ok, err := s.TryLease(t.Context(), "janitor", old.Owner, 24*time.Hour); err != nil || !ok {
		t.Fatalf("TryLease = %v, %v", ok, err)
	}
	// In this process the claim holds.
	if n, err := s.RecoverInProgress(t.Context(), testOwner); err != nil || n != 0 {
		t.Fatalf("RecoverInProgress(another owner) while the claim holds = %d, %v; want 0", n, err)
	}
	s.Close()

	s = mustOpen(t, path, Options{})
	if ok, err := s.TryLease(t.Context(), "janitor", testOwner, time.Minute); err != nil || !ok {
		t.Fatalf("TryLease of a dead process's lease after Open = %v, %v; want it free", ok, err)
	}
	if n, err := s.RecoverInProgress(t.Context(), testOwner); err != nil || n != 1 {
		t.Fatalf("RecoverInProgress after Open = %d, %v; want the dead process's item", n, err)
	}
}

// TestOpen_MigrateJobRuns: a state at version 6 (job successes, no job
// runs) migrates to the current version keeping its last successes, with
// no last run yet, and records runs afterwards; a read-only open of the
// version 6 state is refused as too old.
func TestOpen_MigrateJobRuns(t *testing.T) {
	path := dbPath(t)
	s := mustOpen(t, path, Options{})
	success := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	if err := s.SetLastSuccess(t.Context(), "cdr", success); err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{`DROP INDEX items_claim`, `CREATE INDEX items_due ON items (state, next_attempt_at)`, `DROP TABLE job_runs`, `PRAGMA user_version = 6`} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	db.Close()

	if _, err := Open(path, Options{ReadOnly: true}); !errors.Is(err, ErrSchemaTooOld) {
		t.Fatalf("read-only Open of a version 6 state = %v, want ErrSchemaTooOld", err)
	}
	s = mustOpen(t, path, Options{})
	if v, err := schemaVersion(t.Context(), s.db); err != nil || v != len(migrations()) {
		t.Fatalf("schema version = %d, %v; want %d", v, err, len(migrations()))
	}
	if got, ok, err := s.LastSuccess(t.Context(), "cdr"); err != nil || !ok || !got.Equal(success) {
		t.Fatalf("LastSuccess after the migration = %v %v %v, want %v", got, ok, err, success)
	}
	if _, ok, err := s.LastRun(t.Context(), "cdr"); err != nil || ok {
		t.Fatalf("LastRun after the migration = ok %v, %v; want none", ok, err)
	}
	run := checkpoint.JobRun{Job: "cdr", Started: success, Finished: success.Add(time.Second), Result: checkpoint.RunOK}
	if err := s.SetLastRun(t.Context(), run); err != nil {
		t.Fatal(err)
	}
	if got, _, err := s.LastRun(t.Context(), "cdr"); err != nil || got != run {
		t.Fatalf("LastRun = %+v, %v; want %+v", got, err, run)
	}
}

// TestStore_AddCallsRows adds calls and items in statements of a few rows
// (insertRows 3): rows repeated inside one statement and across statements
// are added once, the count of new items is right on either side of a
// statement's boundary, a second AddCalls adds nothing, and the day
// summary the triggers keep counts each row once.
func TestStore_AddCallsRows(t *testing.T) {
	ctx := context.Background()
	for _, rows := range []int{1, 3, 0} {
		t.Run(fmt.Sprintf("rows=%d", rows), func(t *testing.T) {
			s := mustOpen(t, dbPath(t), Options{})
			s.insertRows = rows
			calls, items := packagePartOf(7)
			// Repeats: the next row (same statement with 3 rows), and one
			// 5 rows later (another statement).
			items = append(items[:4], append([]checkpoint.Item{items[3]}, items[4:]...)...)
			items = append(items, items[0])
			calls = append(calls, calls[6], calls[0])
			n, err := s.AddCalls(ctx, calls, items)
			if err != nil {
				t.Fatal(err)
			}
			if n != 21 {
				t.Fatalf("AddCalls = %d new items, want 21 (7 calls × 3, repeats once)", n)
			}
			if n, err := s.AddCalls(ctx, calls, items); err != nil || n != 0 {
				t.Fatalf("AddCalls again = %d, %v; want 0", n, err)
			}
			days, err := s.Days(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(days) != 1 || days[0].Calls != 7 {
				t.Fatalf("Days = %+v, want one day of 7 calls", days)
			}
			for _, kind := range []string{checkpoint.KindAgent, checkpoint.KindTransferLookup, checkpoint.KindIVRLookup} {
				if got := days[0].Counts[kind][checkpoint.StatePending]; got != 7 {
					t.Errorf("Days: %d pending %s items, want 7", got, kind)
				}
			}
			var stored int
			if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM items`).Scan(&stored); err != nil || stored != 21 {
				t.Fatalf("items table: %d rows, %v; want 21", stored, err)
			}
		})
	}
}

// TestStore_AddCallsRowsInvalid: an item that cannot be added fails the
// whole AddCalls naming it, and nothing of it is kept, in whichever
// statement it falls.
func TestStore_AddCallsRowsInvalid(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t, dbPath(t), Options{})
	s.insertRows = 3
	calls, items := packagePartOf(4)
	items[7].State = checkpoint.StateDone
	_, err := s.AddCalls(ctx, calls, items)
	if !errors.Is(err, checkpoint.ErrState) || !strings.Contains(err.Error(), items[7].UpstreamID) {
		t.Fatalf("AddCalls = %v, want ErrState naming %s", err, items[7].UpstreamID)
	}
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM items) + (SELECT COUNT(*) FROM calls)`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d rows kept, %v; want none", n, err)
	}
}
