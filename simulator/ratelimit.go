package simulator

import (
	"context"
	"math/rand/v2"
	"net/http"
	"time"
)

// leakyBucket is Bitrix24's request-intensity limit (limits.md): every request
// adds 1, the level drains at a fixed rate, and a request that would take the
// level over the burst is refused with 503 QUERY_LIMIT_EXCEEDED. It runs on
// the real clock (not the simulated offset) so load tests behave; now is
// injected for unit tests. Callers hold Simulator.mu.
type leakyBucket struct {
	burst int
	drain float64 // per second
	level float64
	last  time.Time
	now   func() time.Time
}

func newLeakyBucket(burst int, drain float64, now func() time.Time) *leakyBucket {
	return &leakyBucket{burst: burst, drain: drain, now: now, last: now()}
}

func (b *leakyBucket) configure(burst int, drain float64) {
	b.leak()
	b.burst, b.drain = burst, drain
}

func (b *leakyBucket) leak() {
	now := b.now()
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.level -= el * b.drain
		if b.level < 0 {
			b.level = 0
		}
	}
	b.last = now
}

// allow adds one request, or refuses it without adding when the bucket is full.
// SILENT: whether refused requests also fill the bucket is undocumented; they
// do not here, so a client that backs off recovers at the documented rate.
// SILENT: limits.md blocks requests "once the counter exceeds X"; whether the
// request that would take it to X+1 is the last admitted or the first refused
// is unstated. It is refused here (the strict reading: at most X at once),
// which is also the bucket the app's own limiter keeps.
func (b *leakyBucket) allow() bool {
	if b.burst <= 0 {
		return true
	}
	b.leak()
	if b.level+1 > float64(b.burst) {
		return false
	}
	b.level++
	return true
}

// Fault is a canned failure for InjectFault. Method "" matches any REST
// request, "batch" the batch HTTP request; any other method name matches a
// direct call and also a sub-call inside a batch (which then fails with
// result_error Code/Description, unless the fault hangs, closes or sends a raw
// body, which then hits the whole batch request).
//
// A fault with only Delay set delays the request, which then runs normally.
// Otherwise the response is RawBody (Content-Type text/html when it starts
// with "<") or the JSON error {"error":Code,"error_description":Description},
// with Status (default 500).
type Fault struct {
	Method          string
	Times           int // default 1
	Status          int
	Code            string
	Description     string
	RawBody         string
	Delay           time.Duration
	Hang            bool // never answer until the client goes away
	CloseConnection bool // hijack and close without answering
	// Probability, when above 0, makes each matching request take the fault
	// only with that probability (a request that escapes it does not count
	// against Times): 0.3 with a large Times is "30 % of calls fail".
	Probability float64
	// AfterRun lets the request run normally first and then replaces its
	// answer with the fault: the call took effect but the client cannot
	// know (a 500 without code, a connection reset after the work, a hang,
	// an HTML page). It matches whole requests only, never batch sub-calls.
	AfterRun bool
	// Location, with Status 3xx (default 302 when Location is set), answers
	// a redirect to that URL, as a renamed portal does (see MoveTo, which
	// models the real rename; this one can point anywhere).
	Location string
}

func (f Fault) delayOnly() bool {
	return f.Status == 0 && f.Code == "" && f.Description == "" && f.RawBody == "" && !f.Hang && !f.CloseConnection && f.Location == ""
}

func (f Fault) wholeRequest() bool { return f.Hang || f.CloseConnection || f.RawBody != "" }

// InjectFault queues a fault: the next f.Times requests matching f.Method
// answer with it instead of running. Faults are checked before rate limiting
// and authentication, so they never consume the bucket.
func (p *Portal) InjectFault(f Fault) {
	if f.Times <= 0 {
		f.Times = 1
	}
	p.s.mu.Lock()
	p.faults = append(p.faults, f)
	p.s.mu.Unlock()
}

// ClearFaults drops every fault still queued for the portal (say, one
// injected with a large Times and a Probability for a load phase).
func (p *Portal) ClearFaults() {
	p.s.mu.Lock()
	p.faults = nil
	p.s.mu.Unlock()
}

// takeFaultLocked pops one use of the first fault matching method. sub says
// the method is a batch sub-call, which "" and "batch" faults never match.
func takeFaultLocked(faults *[]Fault, method string, sub bool) (Fault, bool) {
	for i, f := range *faults {
		match := f.Method == method
		if !sub && f.Method == "" {
			match = true
		}
		if sub && (f.Method == "" || f.Method == "batch" || f.AfterRun) {
			match = false
		}
		if !match {
			continue
		}
		if f.Probability > 0 && rand.Float64() >= f.Probability { // #nosec G404 -- the simulator's fault dice decide no security question
			continue
		}
		(*faults)[i].Times--
		if (*faults)[i].Times <= 0 {
			*faults = append((*faults)[:i], (*faults)[i+1:]...)
		}
		return f, true
	}
	return Fault{}, false
}

// serveFault writes a fault response. It returns handled=false for a
// delay-only fault whose delay elapsed (the request then runs normally), and
// the status and error to record.
func (s *Simulator) serveFault(ctx context.Context, w http.ResponseWriter, f Fault) (handled bool, status int, errText string) {
	if f.Delay > 0 && !s.waitOrDone(ctx, f.Delay) {
		return true, 0, "fault: client gone during delay"
	}
	switch {
	case f.Hang:
		select {
		case <-ctx.Done():
		case <-s.done:
		}
		return true, 0, "fault: hang"
	case f.CloseConnection:
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return true, 0, "fault: connection closed"
			}
		}
		// Not hijackable (HTTP/2, embedding): the closest is an aborted handler.
		panic(http.ErrAbortHandler)
	case f.delayOnly():
		return false, 0, ""
	}
	status = f.Status
	if status == 0 {
		status = http.StatusInternalServerError
		if f.Location != "" {
			status = http.StatusFound
		}
	}
	if f.Location != "" {
		w.Header().Set("Location", f.Location)
	}
	if f.RawBody != "" {
		ct := "text/plain; charset=utf-8"
		if len(f.RawBody) > 0 && f.RawBody[0] == '<' {
			ct = "text/html; charset=utf-8"
		}
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(status)
		_, _ = w.Write([]byte(f.RawBody))
		return true, status, "fault: raw body"
	}
	apiErr(status, f.Code, f.Description).write(w)
	return true, status, f.Code
}

// OperationTimeLimit is Bitrix24's answer once a method has used up its
// operating time (429, recorded: testdata/recorded/rest_operation_time_limit.json).
func OperationTimeLimit(method string) Fault {
	return Fault{Method: method, Status: http.StatusTooManyRequests, Code: "OPERATION_TIME_LIMIT",
		Description: "Method is blocked due to operation time limit."}
}

// OverloadLimit is the answer of a portal whose REST API support blocked
// (503, testdata/recorded/rest_overload_limit.json).
func OverloadLimit(method string) Fault {
	return Fault{Method: method, Status: http.StatusServiceUnavailable, Code: "OVERLOAD_LIMIT",
		Description: "REST API is blocked due to overload."}
}

// SetRateLimit changes the leaky bucket: burst requests at once, drained at
// drainPerSec. burst <= 0 disables rate limiting (load tests of our own code).
func (p *Portal) SetRateLimit(burst int, drainPerSec float64) {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	p.bucket.configure(burst, drainPerSec)
}
