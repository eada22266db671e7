package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// Bulk works the admins' bulk runs. The handlers implement it: a run acts
// on the portal as the admin who started it, which only they know how to
// do (asUser), and jobs never imports them.
type Bulk interface {
	// WorkBulkRun works run id until it is finished, paused or cancelled,
	// or until another instance holds its lease (then it returns nil at
	// once). An error leaves the run where it stopped, for a retry.
	WorkBulkRun(ctx context.Context, id int64) error
	// StaleBulkRuns lists the runs with work to do that no instance is
	// working: a crash, a deploy or a lost job left them.
	StaleBulkRuns(ctx context.Context) ([]int64, error)
}

// BulkRunArgs is the job that works one bulk run.
type BulkRunArgs struct {
	RunID int64 `json:"run_id"`
	// Since tells a run's jobs apart: the time of the start or resume
	// that enqueued it, or the period of the resume pass. Jobs with the
	// same args are one (unique), so a pass that finds a run still stale
	// does not pile up jobs; two jobs of one run are harmless anyway, as
	// the run's lease lets one work and the other return.
	Since int64 `json:"since"`
}

// Kind implements river.JobArgs.
func (BulkRunArgs) Kind() string { return "bulk_run" }

// InsertOpts implements river.JobArgsWithInsertOpts: a failed attempt
// (the portal unreachable for minutes) is retried with River's backoff;
// the resume pass picks the run up in any case.
func (BulkRunArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{MaxAttempts: 10, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// bulkWorker runs BulkRunArgs jobs.
type bulkWorker struct {
	river.WorkerDefaults[BulkRunArgs]
	bulk Bulk
}

func (w *bulkWorker) Work(ctx context.Context, job *river.Job[BulkRunArgs]) error {
	return w.bulk.WorkBulkRun(ctx, job.Args.RunID)
}

// Timeout is none: a run is as long as its leads, and keeps its lease
// renewed while it works; a graceful stop ends it between batches.
func (w *bulkWorker) Timeout(*river.Job[BulkRunArgs]) time.Duration { return -1 }

// BulkResumeEvery is how often River's leader looks for stale runs (and
// once when it is elected, so a restarted cluster resumes at once): with
// a lease of about as long, a run a crash interrupted goes on within two
// periods.
const BulkResumeEvery = 15 * time.Second

// bulkResumeArgs is the periodic pass that re-enqueues stale runs.
type bulkResumeArgs struct{}

func (bulkResumeArgs) Kind() string { return "bulk_resume" }

type bulkResumer struct {
	river.WorkerDefaults[bulkResumeArgs]
	bulk   Bulk
	insert *inserter
	logger *slog.Logger
}

// inserter is the client's Insert, set once the client exists (the
// workers are registered before it is built).
type inserter struct {
	fn func(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
}

func (w *bulkResumer) Work(ctx context.Context, _ *river.Job[bulkResumeArgs]) error {
	ids, err := w.bulk.StaleBulkRuns(ctx)
	if err != nil {
		return fmt.Errorf("jobs: stale bulk runs: %w", err)
	}
	period := time.Now().Truncate(BulkResumeEvery).Unix()
	for _, id := range ids {
		res, err := w.insert.fn(ctx, BulkRunArgs{RunID: id, Since: period}, nil)
		if err != nil {
			return fmt.Errorf("jobs: resume bulk run %d: %w", id, err)
		}
		if !res.UniqueSkippedAsDuplicate {
			w.logger.InfoContext(ctx, "bulk run resumed", "run", id)
		}
	}
	return nil
}

// addBulk registers the bulk workers and returns the resume pass.
func addBulk(workers *river.Workers, bulk Bulk, ins *inserter, logger *slog.Logger) (*river.PeriodicJob, error) {
	if err := river.AddWorkerSafely(workers, &bulkWorker{bulk: bulk}); err != nil {
		return nil, err
	}
	if err := river.AddWorkerSafely(workers, &bulkResumer{bulk: bulk, insert: ins, logger: logger}); err != nil {
		return nil, err
	}
	return river.NewPeriodicJob(river.PeriodicInterval(BulkResumeEvery),
		func() (river.JobArgs, *river.InsertOpts) {
			return bulkResumeArgs{}, &river.InsertOpts{MaxAttempts: 1,
				UniqueOpts: river.UniqueOpts{ByPeriod: BulkResumeEvery}}
		},
		&river.PeriodicJobOpts{ID: "bulk_resume", RunOnStart: true}), nil
}
