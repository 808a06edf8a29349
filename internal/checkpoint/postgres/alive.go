package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
)

// Runs recorded as running, and whether their process still lives.
//
// With SQLite, whoever runs a job holds the state file's lock, so a run
// recorded as running while nobody holds it was cut short (sqlite.Held).
// With PostgreSQL the replicas share the database; each process that
// records a run as running holds a session-level advisory lock named after
// its tenant and replica ID, on a connection of its own outside the pool,
// for as long as the store is open. A process that is killed, runs out of
// memory or loses its machine drops that connection (at once, or when the
// server's TCP keepalive notices), and the server releases the lock with
// it: ReplicasAlive then answers false for that replica, and status shows
// its running records as interrupted. The connection is checked every
// runLockCheck and opened again after the server restarted.

// runLockCheck is how often the run lock's connection is checked.
var runLockCheck = 10 * time.Second

// runLockTimeout bounds each connect, lock and check of the run lock: an
// unreachable server delays a run's start, or Close, by at most this.
const runLockTimeout = 5 * time.Second

// runLockName is the advisory lock's name for replica of the tenant (the
// tenant's length first: no two pairs share a name).
func (s *Store) runLockName(replica string) string {
	return fmt.Sprintf("cec-archiver run %d:%s%s", len(s.tenant), s.tenant, replica)
}

// holdRunLock makes sure this process holds the run lock of replica. A
// failure is logged, not returned: the run goes on, and status may show it
// interrupted while the lock is missing.
func (s *Store) holdRunLock(ctx context.Context, replica string) {
	if s.readOnly || replica == "" {
		return
	}
	s.runMu.Lock()
	defer s.runMu.Unlock()
	if s.closed() {
		return
	}
	if s.runReplica == replica && s.runConn != nil && !s.runConn.IsClosed() {
		return
	}
	if s.runConn != nil && s.runReplica != replica {
		closeConn(s.runConn)
		s.runConn = nil
	}
	s.runReplica = replica
	if err := s.lockRunLocked(ctx); err != nil {
		s.log.Warn("cannot hold the run lock: status may show this replica's runs as interrupted until it is held again",
			zap.String("replica", replica), zap.Error(err))
	}
	if s.runStop == nil {
		s.runStop, s.runDone = make(chan struct{}), make(chan struct{})
		go s.keepRunLock(s.runStop, s.runDone)
	}
}

// lockRunLocked opens the run lock's connection and takes the lock. runMu
// is held.
func (s *Store) lockRunLocked(ctx context.Context) error {
	if s.runConn != nil {
		closeConn(s.runConn)
		s.runConn = nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), runLockTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, s.connConfig.Copy())
	if err != nil {
		return fmt.Errorf("checkpoint: postgres: %s: run lock: %w", s.where, err)
	}
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtextextended($1, 0))`, s.runLockName(s.runReplica)).Scan(&ok); err != nil {
		closeConn(conn)
		return fmt.Errorf("checkpoint: postgres: %s: run lock: %w", s.where, err)
	}
	if !ok {
		closeConn(conn)
		return fmt.Errorf("checkpoint: postgres: run lock of replica %q is held by another session (another process with the same replica ID?)", s.runReplica)
	}
	s.runConn = conn
	return nil
}

// keepRunLock checks the run lock's connection every runLockCheck and takes
// the lock again when the connection was lost (the server restarted).
func (s *Store) keepRunLock(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	failing := false
	t := time.NewTicker(runLockCheck)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		s.runMu.Lock()
		if s.runConn != nil {
			ctx, cancel := context.WithTimeout(context.Background(), runLockTimeout)
			err := s.runConn.Ping(ctx)
			cancel()
			if err == nil {
				s.runMu.Unlock()
				continue
			}
		}
		// Logged once per outage, not every check.
		if err := s.lockRunLocked(context.Background()); err != nil && !failing {
			failing = true
			s.log.Warn("cannot hold the run lock again: status may show this replica's runs as interrupted until it is held",
				zap.String("replica", s.runReplica), zap.Error(err))
		} else if err == nil {
			failing = false
			s.log.Info("run lock held again", zap.String("replica", s.runReplica))
		}
		s.runMu.Unlock()
	}
}

// closeRunLock stops keeping the run lock and drops its connection, which
// releases the lock.
func (s *Store) closeRunLock() {
	s.runMu.Lock()
	stop, done := s.runStop, s.runDone
	s.runStop = nil
	s.runMu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
	s.runMu.Lock()
	defer s.runMu.Unlock()
	if s.runConn != nil {
		closeConn(s.runConn)
		s.runConn = nil
	}
}

// closeConn closes c within runLockTimeout.
func closeConn(c *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), runLockTimeout)
	defer cancel()
	c.Close(ctx)
}

// ReplicasAlive reports, for each replica, whether a session on the
// database holds its run lock: false means the process that recorded its
// runs as running no longer holds its connection (it ended without
// recording their end, or it is an archiver older than this lock). It
// reads pg_locks and takes no lock itself.
func (s *Store) ReplicasAlive(ctx context.Context, replicas []string) (map[string]bool, error) {
	out := make(map[string]bool, len(replicas))
	for _, r := range replicas {
		if _, ok := out[r]; ok {
			continue
		}
		var held bool
		err := s.pool.QueryRow(ctx, `WITH k AS (SELECT hashtextextended($1, 0) AS k)
			SELECT EXISTS (SELECT 1 FROM pg_locks, k WHERE locktype = 'advisory' AND granted
				AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
				AND classid = ((k.k >> 32) & 4294967295)::oid AND objid = (k.k & 4294967295)::oid AND objsubid = 1)`,
			s.runLockName(r)).Scan(&held)
		if err != nil {
			return nil, fmt.Errorf("checkpoint: postgres: %s: run locks: %w", s.where, err)
		}
		out[r] = held
	}
	return out, nil
}
