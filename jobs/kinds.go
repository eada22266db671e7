package jobs

import (
	"github.com/riverqueue/river"
)

// register adds every kind of job to workers and returns the periodic
// jobs. A new kind (a bulk run, say) is its args type with Kind and
// InsertOpts, its worker in a file of its own (chore.go is the model: it
// logs and observes its outcome itself), and one line here; it is then
// enqueued with Engine.Insert.
func register(workers *river.Workers, cfg Config, ins *inserter) ([]*river.PeriodicJob, error) {
	chores, periodic, err := newChores(cfg)
	if err != nil {
		return nil, err
	}
	if err := river.AddWorkerSafely(workers, chores); err != nil {
		return nil, err
	}
	if cfg.Robots != nil {
		if err := river.AddWorkerSafely(workers, &robotWorker{robots: cfg.Robots}); err != nil {
			return nil, err
		}
	}
	if cfg.Bulk != nil {
		resume, err := addBulk(workers, cfg.Bulk, ins, cfg.Logger)
		if err != nil {
			return nil, err
		}
		periodic = append(periodic, resume)
	}
	return periodic, nil
}
