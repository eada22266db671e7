package jobs

import (
	"context"
	"time"

	"github.com/riverqueue/river"
)

// Robots works the runs of the app's automation rules. The handlers
// implement it: a run acts on the portal with the token Bitrix24 sent with
// it, which only they know how to do, and jobs never imports them.
type Robots interface {
	// WorkRobotRun works one run, as the handler sealed it. last says no
	// attempt follows: the run's outcome must then be reported, whatever
	// it is. An error asks for another attempt (the portal was busy or
	// unreachable); nothing was recorded or reported for it yet.
	WorkRobotRun(ctx context.Context, sealed string, last bool) error
}

// RobotRunArgs is the job that works one run of an automation rule. The
// run (its tokens included) is sealed by the handlers: River keeps the
// args in its table, where no token may sit in clear.
type RobotRunArgs struct {
	Sealed string `json:"sealed"`
}

// Kind implements river.JobArgs.
func (RobotRunArgs) Kind() string { return "robot_run" }

// QueueRobots is the queue of the rules' runs: a stage change of many
// leads at once fires as many runs, which must not hold up the chores and
// the bulk runs, nor be held up by them.
const QueueRobots = "robots"

// RobotAttempts bounds the attempts of one run. River's backoff (about
// attempt⁴ seconds) puts the last one some six minutes after the first,
// well within the hour the run's token lives.
const RobotAttempts = 5

// robotWorkers is how many runs one instance works at once. They mostly
// wait for the portal's budget (the app's limiter keeps them behind
// people's requests), so a few more than the portal's drain need.
const robotWorkers = 8

// robotTimeout bounds one attempt: long enough to wait for the portal's
// budget behind a stage change of hundreds of leads.
const robotTimeout = 10 * time.Minute

// InsertOpts implements river.JobArgsWithInsertOpts.
func (RobotRunArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueRobots, MaxAttempts: RobotAttempts}
}

// robotWorker runs RobotRunArgs jobs.
type robotWorker struct {
	river.WorkerDefaults[RobotRunArgs]
	robots Robots
}

func (w *robotWorker) Work(ctx context.Context, job *river.Job[RobotRunArgs]) error {
	return w.robots.WorkRobotRun(ctx, job.Args.Sealed, job.Attempt >= job.MaxAttempts)
}

func (w *robotWorker) Timeout(*river.Job[RobotRunArgs]) time.Duration { return robotTimeout }
