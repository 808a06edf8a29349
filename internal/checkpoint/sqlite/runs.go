package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/cec-archiver/cec-archiver/internal/checkpoint"
)

// jobRunCols are the columns of job_runs in the order scanJobRun reads.
const jobRunCols = `job, started, finished, result, error, done, failed, bytes, replica`

func scanJobRun(r scanner) (checkpoint.JobRun, error) {
	var j checkpoint.JobRun
	var started, finished int64
	if err := r.Scan(&j.Job, &started, &finished, &j.Result, &j.Error, &j.Done, &j.Failed, &j.Bytes, &j.Replica); err != nil {
		return checkpoint.JobRun{}, err
	}
	j.Started, j.Finished = dec(started), dec(finished)
	return j, nil
}

// LastRun returns the last run recorded for a job.
func (s *Store) LastRun(ctx context.Context, job string) (checkpoint.JobRun, bool, error) {
	j, err := scanJobRun(s.db.QueryRowContext(ctx, `SELECT `+jobRunCols+` FROM job_runs WHERE job = ?`, job))
	if errors.Is(err, sql.ErrNoRows) {
		return checkpoint.JobRun{}, false, nil
	}
	if err != nil {
		return checkpoint.JobRun{}, false, fmt.Errorf("checkpoint: last run of %s: %w", job, err)
	}
	return j, true, nil
}

// SetLastRun records r as its job's last run unless the stored one started
// later.
func (s *Store) SetLastRun(ctx context.Context, r checkpoint.JobRun) error {
	err := checkpoint.CheckJobRun(r)
	if err == nil {
		err = s.write(ctx, func(tx *sql.Tx) error {
			var e timeEnc
			started, finished := e.enc(r.Started), e.enc(r.Finished)
			if e.err != nil {
				return e.err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO job_runs (`+jobRunCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (job) DO UPDATE SET started = excluded.started, finished = excluded.finished,
				result = excluded.result, error = excluded.error, done = excluded.done, failed = excluded.failed,
				bytes = excluded.bytes, replica = excluded.replica
			WHERE excluded.started >= job_runs.started`,
				r.Job, started, finished, string(r.Result), r.Error, r.Done, r.Failed, r.Bytes, r.Replica)
			return err
		})
	}
	if err != nil {
		return fmt.Errorf("checkpoint: set last run of %s: %w", r.Job, err)
	}
	return nil
}
