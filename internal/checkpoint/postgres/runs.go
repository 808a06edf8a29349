package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
)

// jobRunCols are the columns of job_runs, without the tenant, in the order
// scanJobRun reads.
const jobRunCols = `job, started, finished, result, error, done, failed, bytes, replica`

func scanJobRun(r pgx.Row) (checkpoint.JobRun, error) {
	var j checkpoint.JobRun
	var result string
	var started, finished int64
	if err := r.Scan(&j.Job, &started, &finished, &result, &j.Error, &j.Done, &j.Failed, &j.Bytes, &j.Replica); err != nil {
		return checkpoint.JobRun{}, err
	}
	j.Result = checkpoint.RunResult(result)
	j.Started, j.Finished = dec(started), dec(finished)
	return j, nil
}

// LastRun returns the last run recorded for a job of the tenant.
func (s *Store) LastRun(ctx context.Context, job string) (checkpoint.JobRun, bool, error) {
	j, err := scanJobRun(s.pool.QueryRow(ctx, `SELECT `+jobRunCols+` FROM job_runs WHERE tenant = $1 AND job = $2`, s.tenant, job))
	if errors.Is(err, pgx.ErrNoRows) {
		return checkpoint.JobRun{}, false, nil
	}
	if err != nil {
		return checkpoint.JobRun{}, false, fmt.Errorf("checkpoint: last run of %s: %w", job, err)
	}
	return j, true, nil
}

// SetLastRun records r as its job's last run unless the stored one started
// later: the comparison and the change are one statement, so concurrent
// replicas leave the run that started last. A run recorded as running is
// first covered by this process's run lock (alive.go).
func (s *Store) SetLastRun(ctx context.Context, r checkpoint.JobRun) error {
	if r.Result == checkpoint.RunRunning {
		s.holdRunLock(ctx, r.Replica)
	}
	err := func() error {
		row, err := s.jobRunValues(r)
		if err != nil {
			return err
		}
		_, err = s.exec(ctx, `INSERT INTO job_runs (tenant, `+jobRunCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
			ON CONFLICT (tenant, job) DO UPDATE SET started = excluded.started, finished = excluded.finished,
				result = excluded.result, error = excluded.error, done = excluded.done, failed = excluded.failed,
				bytes = excluded.bytes, replica = excluded.replica
			WHERE excluded.started >= job_runs.started`, row...)
		return err
	}()
	if err != nil {
		return fmt.Errorf("checkpoint: set last run of %s: %w", r.Job, err)
	}
	return nil
}

// jobRunValues checks r and returns its row (tenant first), as SetLastRun
// and Import store it.
func (s *Store) jobRunValues(r checkpoint.JobRun) ([]any, error) {
	if err := checkpoint.CheckJobRun(r); err != nil {
		return nil, err
	}
	var e timeEnc
	started, finished := e.enc(r.Started), e.enc(r.Finished)
	var te textEnc
	row := []any{s.tenant, te.check("job", r.Job), started, finished, string(r.Result), freeText(r.Error),
		r.Done, r.Failed, r.Bytes, te.check("replica", r.Replica)}
	if err := errors.Join(e.err, te.err); err != nil {
		return nil, err
	}
	return row, nil
}
