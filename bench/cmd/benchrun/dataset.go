package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/cecclient"
	"github.com/cec-archiver/cec-archiver/internal/cecsim"
)

// dataset is one benchmark dataset: the simulator's options and what the
// archiver is asked to do with them.
type dataset struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Calls       int    `json:"calls"`
	MinBytes    int64  `json:"min_bytes"`
	MaxBytes    int64  `json:"max_bytes"`
	// Lookups runs the archiver's transfer and ivr jobs (OIFDE lookups per
	// call, and their recordings); without, only agent recordings exist.
	Lookups bool `json:"lookups"`
	// StoreItems, when positive, makes the run the store benchmark: the
	// archiver alone, on an empty state and on one holding that many done
	// items.
	StoreItems int `json:"store_items,omitempty"`
	// Days, when more than one, spreads the calls over that many days
	// before today; the resume check backfills them.
	Days int `json:"days,omitempty"`
	// Resume makes the run the killed-backfill check (resume.go).
	Resume bool `json:"resume,omitempty"`
}

// datasetByName returns the named dataset. Recordings per call: about 1.0
// agent recording, and with lookups about 0.77 transfer and IVR ones more.
func datasetByName(name string) (dataset, bool) {
	const kib, mib = 1 << 10, 1 << 20
	switch name {
	case "smoke":
		return dataset{Name: name, Description: "20 calls × 64 KiB, all kinds (the CI smoke test)",
			Calls: 20, MinBytes: 64 * kib, MaxBytes: 64 * kib, Lookups: true}, true
	case "1mb":
		return dataset{Name: name, Description: "~2,000 recordings × 1 MiB, all kinds",
			Calls: 1130, MinBytes: mib, MaxBytes: mib, Lookups: true}, true
	case "large":
		return dataset{Name: name, Description: "a few recordings × 64 MiB, all kinds",
			Calls: 5, MinBytes: 64 * mib, MaxBytes: 64 * mib, Lookups: true}, true
	case "100mb":
		return dataset{Name: name, Description: "~20 agent recordings × 100 MiB, lookups off (the memory target: 16 downloads at once)",
			Calls: 20, MinBytes: 100 * mib, MaxBytes: 100 * mib}, true
	case "10mb":
		return dataset{Name: name, Description: "~160 agent recordings × 10 MiB, lookups off (the memory target with 10 MB files)",
			Calls: 160, MinBytes: 10 * mib, MaxBytes: 10 * mib}, true
	case "resume":
		return dataset{Name: name, Description: "a backfill over 12 days, SIGKILLed at window 7 and run again: which windows the second run requests",
			Calls: 240, MinBytes: 8 * kib, MaxBytes: 8 * kib, Days: 12, Resume: true}, true
	case "8kb":
		return dataset{Name: name, Description: "~20,000 agent recordings × 8 KiB, lookups off",
			Calls: 20000, MinBytes: 8 * kib, MaxBytes: 8 * kib}, true
	case "store1m":
		return dataset{Name: name, Description: "an incremental pass finding ~1,000 new 8 KiB agent recordings, over 1,000,000 done items vs an empty state",
			Calls: 1000, MinBytes: 8 * kib, MaxBytes: 8 * kib, StoreItems: 1_000_000}, true
	}
	return dataset{}, false
}

func datasetNames() string { return "smoke, 1mb, large, 100mb, 10mb, 8kb, store1m, resume" }

// Simulator credentials, shared with the archiver's configuration.
const (
	simAK          = "benchAK"
	simSK          = "bench-secret-key"
	simTenant      = "tenant-bench"
	simAPIPassword = "bench-api-password"
)

// file is one recording of the dataset as the harness keeps it: its path
// under the data directory (also its key in B's and C's buckets) and its
// digest from the simulator's manifest.
type file struct {
	Key    string `json:"key"`
	Kind   string `json:"kind"`
	ID     string `json:"id"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`

	fileName, location string
}

// simulator is the in-process CEC simulator on a loopback listener.
type simulator struct {
	sim *cecsim.Server
	srv *http.Server
	URL string
	// Start is the first day of calls (yesterday but for Days > 1).
	Start   time.Time
	queries *queryWatch
}

// startSimulator serves the dataset's simulator; its one day of calls is
// yesterday (UTC), so `archiver once` finds it in its lookback windows.
// Packages are ready at once: the benchmark measures the archiver, not the
// simulator's announced delay.
func startSimulator(d dataset, log *zap.Logger) (*simulator, error) {
	days := max(d.Days, 1)
	day := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -days)
	sim, err := cecsim.New(cecsim.Options{
		Seed: 1, Calls: d.Calls, Days: days, Start: day, Location: time.UTC,
		Credentials: map[string]string{simAK: simSK}, TenantID: simTenant, APIPassword: simAPIPassword,
		BillReadyDelay: -1, MinRecordingBytes: d.MinBytes, MaxRecordingBytes: d.MaxBytes,
		Logger: log,
	})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		sim.Close()
		return nil, err
	}
	q := &queryWatch{}
	s := &simulator{sim: sim, URL: "http://" + ln.Addr().String(), Start: day, queries: q,
		srv: &http.Server{Handler: q.wrap(sim), ReadHeaderTimeout: 10 * time.Second}}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

func (s *simulator) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
	s.sim.Close()
}

// files lists the recordings the archiver must archive: all of the
// manifest, or its agent recordings when the lookups are off.
func (s *simulator) files(d dataset) ([]file, error) {
	m := s.sim.Manifest()
	var out []file
	seen := map[string]bool{}
	for _, r := range m.Recordings {
		if !d.Lookups && r.Kind != cecsim.KindAgent {
			continue
		}
		f := file{Key: localKey(r.Kind, r.FileName), Kind: r.Kind, ID: r.ID, Size: r.Size, SHA256: r.SHA256,
			fileName: r.FileName, location: r.LocationID}
		if seen[f.Key] {
			return nil, fmt.Errorf("two recordings map to %s", f.Key)
		}
		seen[f.Key] = true
		out = append(out, f)
	}
	if len(out) == 0 {
		return nil, errors.New("the dataset has no recordings")
	}
	return out, nil
}

// localKey names a recording under the data directory: its kind, then its
// CEC path without the drive letter's colon ("Y:/39/…" → "transfer/Y/39/…").
func localKey(kind, fileName string) string {
	p := strings.TrimPrefix(strings.ReplaceAll(fileName, ":", ""), "/")
	return kind + "/" + p
}

// fetch downloads every recording from the simulator into dir, the way an
// archiver would (signed CC-FS requests), and checks each against the
// manifest's size and SHA-256. Files are written to a temporary name and
// renamed.
func (s *simulator) fetch(ctx context.Context, dir string, files []file, workers int) error {
	c, err := cecclient.New(cecclient.Options{
		FSURL: s.URL, OIFDEURL: s.URL, AK: simAK, SK: simSK, TenantID: simTenant, APIPassword: simAPIPassword,
		RateLimit: 1e6, Burst: 1000, MinRate: -1,
	})
	if err != nil {
		return err
	}
	work := make(chan file)
	errc := make(chan error, workers)
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range work {
				if err := fetchOne(ctx, c, dir, f); err != nil {
					errc <- err
					cancel()
					return
				}
			}
		}()
	}
feed:
	for _, f := range files {
		select {
		case work <- f:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return err
	}
	return ctx.Err()
}

func fetchOne(ctx context.Context, c *cecclient.Client, dir string, f file) error {
	var d *cecclient.Download
	var err error
	if f.Kind == cecsim.KindAgent {
		d, err = c.DownloadRecordFile(ctx, f.fileName)
	} else {
		d, err = c.DownloadOiapRecord(ctx, f.fileName, f.location)
	}
	if err != nil {
		return fmt.Errorf("fetch %s: %w", f.Key, err)
	}
	defer d.Body.Close()
	path := filepath.Join(dir, filepath.FromSlash(f.Key))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".fetch-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), d.Body)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fetch %s: %w", f.Key, err)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); n != f.Size || sum != f.SHA256 {
		return fmt.Errorf("fetch %s: got %d bytes %s, the manifest says %d bytes %s", f.Key, n, sum, f.Size, f.SHA256)
	}
	return os.Rename(tmp.Name(), path)
}

// writeManifest writes the harness's list of files (key, size, SHA-256)
// as JSON, for the smoke test and for reading later.
func writeManifest(path string, files []file) error {
	sorted := append([]file(nil), files...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Key < sorted[j].Key })
	b, err := json.MarshalIndent(sorted, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func totalBytes(files []file) int64 {
	var n int64
	for _, f := range files {
		n += f.Size
	}
	return n
}
