package simulator

import (
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Call records one REST call. Batch sub-calls are recorded individually with
// Batch set (after the record of the batch request itself).
type Call struct {
	Time        time.Time // simulated clock
	Method      string    // lower case, without ".json"
	Batch       bool      // true for a sub-call inside batch
	BatchKey    string    // the sub-call's key in cmd
	UserID      int       // 0 when the token was not valid
	TokenPrefix string    // first 4 characters of the access token, never more
	Params      url.Values
	HTTPStatus  int    // for sub-calls: the status the call would have had alone
	Error       string // error code ("" for success or for an empty-code error, see ErrorDescription)
	// ErrorDescription is the error_description sent, which is the only
	// signal of Bitrix24's empty-code CRM errors.
	ErrorDescription string
}

// Calls returns every REST call recorded so far, oldest first.
func (p *Portal) Calls() []Call {
	return locked(p.s, func() []Call { return append([]Call(nil), p.calls...) })
}

// CallsTo returns the recorded calls of one method (case-insensitive).
func (p *Portal) CallsTo(method string) []Call {
	method = strings.ToLower(method)
	var out []Call
	for _, c := range p.Calls() {
		if c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

// apiError is a Bitrix24 REST error: {"error":code,"error_description":desc}.
type apiError struct {
	status int
	code   string
	desc   string
	extra  map[string]any // e.g. "argument" of ERROR_ARGUMENT
}

func apiErr(status int, code, desc string) *apiError {
	return &apiError{status: status, code: code, desc: desc}
}

// body is the error's JSON, extra keys after the two standard ones.
func (e *apiError) body() obj {
	o := fields("error", e.code, "error_description", e.desc)
	for k, v := range e.extra {
		o.Set(k, v)
	}
	return o
}

func (e *apiError) write(w http.ResponseWriter) { writeJSONResponse(w, e.status, e.body()) }

// System errors, as in _includes/system-errors.md and the fact sheet §3.3.
func errNoAuth() *apiError { return apiErr(401, "NO_AUTH_FOUND", "Wrong authorization data") }

// errInvalidToken is the recorded answer for a token the portal does not
// know (never issued, revoked by a refresh or by an uninstall).
func errInvalidToken() *apiError {
	return apiErr(401, "invalid_token", "Unable to get application by token")
}

// authError is the answer for a token that did not check out.
func authError(token string, st tokenState) *apiError {
	switch {
	case token == "":
		return errNoAuth()
	case st == tokenExpired:
		return apiErr(401, "expired_token", "The access token provided has expired.")
	}
	return errInvalidToken()
}

func errMethodNotFound() *apiError { return apiErr(404, "ERROR_METHOD_NOT_FOUND", "Method not found!") }

// SILENT (docs disagree): the older system-errors page gives 403 for
// insufficient_scope, the newer one 401; the fact sheet's 403 is used.
func errScope() *apiError {
	return apiErr(403, "insufficient_scope", "The request requires higher privileges than provided by the access token")
}

// errAdminOnly is Bitrix24's AccessException.
func errAdminOnly() *apiError { return apiErr(403, "ACCESS_DENIED", "Access denied!") }

// result is what a method returns: the value plus list paging fields.
type result struct {
	value any
	total *int
	next  *int
}

// callCtx is one method invocation. Methods run with Simulator.mu held.
type callCtx struct {
	userID int
	user   User
	params *omap
}

// param returns a parameter by exact name, or case-insensitively (nil when
// absent); str and int read it as PHP's casts would, code as an upper-case
// code such as a placement or event name.
func (c *callCtx) param(name string) any  { return c.params.fold(name) }
func (c *callCtx) str(name string) string { return str(c.param(name)) }
func (c *callCtx) int(name string) int    { return phpInt(c.param(name)) }
func (c *callCtx) code(name string) string {
	return strings.ToUpper(strings.TrimSpace(c.str(name)))
}

type methodFunc func(c *callCtx) (result, *apiError)

// methodDef is one row of the method table: the scope the app needs, and
// admin for the methods only administrators may call (AccessException).
type methodDef struct {
	scope string
	admin bool
	fn    methodFunc
}

// timeInfo is the "time" object of every response (data-types.md#time).
func timeInfo(start, finish time.Time, withOperating bool) obj {
	dur := finish.Sub(start).Seconds()
	o := fields("start", unixFloat(start), "finish", unixFloat(finish), "duration", dur, "processing", dur,
		"date_start", dateTime(start), "date_finish", dateTime(finish))
	if withOperating {
		o.Set("operating_reset_at", start.Add(10*time.Minute).Unix()).Set("operating", 0)
	}
	return o
}

func unixFloat(t time.Time) float64 {
	return math.Round(float64(t.UnixMicro())) / 1e6
}

func writeJSONResponse(w http.ResponseWriter, status int, body any) {
	b, err := marshalJSON(body)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":"INTERNAL_SERVER_ERROR","error_description":"Internal server error"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(b) // #nosec G705 -- a JSON body served as application/json, never HTML
}

// restMethodName extracts "crm.lead.get" from /rest/crm.lead.get(.json).
// Not modelled: the .xml output format and webhook paths
// (/rest/<user>/<code>/<method>), which come out as unknown methods.
func restMethodName(path string) string {
	m := strings.TrimPrefix(path, "/rest/")
	m = strings.TrimSuffix(m, "/")
	m = strings.TrimSuffix(m, ".json")
	return strings.ToLower(m)
}

// serveREST handles /rest/<method>. Order: fault, rate limit, auth, method,
// scope, then the method itself (which checks rights and arguments).
func (p *Portal) serveREST(w http.ResponseWriter, r *http.Request) {
	s := p.s
	start := s.Now()
	method := restMethodName(r.URL.Path)
	// CORS like the real REST endpoint, so BX24-style browser calls work.
	w.Header().Set("Access-Control-Allow-Origin", "*")
	if r.Method == http.MethodOptions {
		w.Header().Set("Access-Control-Allow-Methods", "GET, POST")
		w.Header().Set("Access-Control-Allow-Headers", "Content-Type")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	params, perr := parseRequestParams(r)
	if params == nil {
		params = newOmap()
	}
	auth, _ := params.Get("auth")
	token := str(auth)
	rec := Call{Time: start, Method: method, TokenPrefix: prefix4(token), Params: flatten(params)}

	s.mu.Lock()
	f, faulted := takeFaultLocked(&p.faults, method, false)
	if t, st := s.checkTokenLocked(token, p); st == tokenOK {
		rec.UserID = t.userID
	}
	s.mu.Unlock()
	if faulted && !f.AfterRun {
		s.log("portal %s: fault on %s", p.memberID, method)
		if f.Hang || f.CloseConnection {
			// Recorded first: the client sees the dropped connection (or
			// gives up waiting) at once and may act on it, and read the
			// calls, before this goroutine runs again.
			rec.Error = "fault: connection closed"
			if f.Hang {
				rec.Error = "fault: hang"
			}
			p.record(rec)
			s.serveFault(r.Context(), w, f)
			return
		}
		handled, status, errText := s.serveFault(r.Context(), w, f)
		if handled {
			rec.HTTPStatus, rec.Error = status, errText
			p.record(rec)
			return
		}
	}
	// respond writes the method's answer, or the AfterRun fault in its place.
	respond := func(status int, body any) {
		if faulted && f.AfterRun {
			s.log("portal %s: fault after running %s", p.memberID, method)
			if handled, _, _ := s.serveFault(r.Context(), w, f); handled {
				return
			}
		}
		writeJSONResponse(w, status, body)
	}

	s.mu.Lock()
	status, body := p.dispatchLocked(method, token, params, perr, start, &rec)
	s.mu.Unlock()

	if method == "batch" && status == http.StatusOK {
		// The batch request is recorded before its sub-calls; sub-calls run
		// outside the lock so their injected delays do not block everything.
		idx := p.record(rec)
		var written bool
		status, body, written = p.runBatch(w, r, token, params, start, &rec)
		if !written {
			rec.HTTPStatus = status
		}
		p.s.mu.Lock()
		p.calls[idx] = rec
		p.s.mu.Unlock()
		if !written {
			respond(status, body)
		}
		return
	}
	rec.HTTPStatus = status
	p.record(rec)
	respond(status, body)
}

// record appends a call and returns its index.
func (p *Portal) record(c Call) int {
	return locked(p.s, func() int {
		p.calls = append(p.calls, c)
		return len(p.calls) - 1
	})
}

// failed records an error answer.
func (c *Call) failed(e *apiError) {
	c.HTTPStatus, c.Error, c.ErrorDescription = e.status, e.code, e.desc
}

// dispatchLocked runs the checks and the method. For batch it only checks
// (status 200 with a nil body means "go on with runBatch").
func (p *Portal) dispatchLocked(method, token string, params *omap, perr error, start time.Time, rec *Call) (int, any) {
	s := p.s
	// SILENT: the order of checks is undocumented; the limiter counts every
	// request, authenticated or not, as limits.md counts "requests".
	var aerr *apiError
	var res result
	switch t, st := s.checkTokenLocked(token, p); {
	case !p.bucket.allow():
		aerr = apiErr(503, "QUERY_LIMIT_EXCEEDED", "Too many requests")
	case perr != nil:
		// SILENT: Bitrix24's answer to an unparsable body is undocumented.
		aerr = apiErr(400, "INVALID_REQUEST", "Request body could not be parsed")
	case st != tokenOK:
		// SILENT: "Authorization: Bearer" is undocumented (only an SDK comment
		// mentions it), so only the documented auth parameter is accepted.
		aerr = authError(token, st)
	default:
		res, aerr = p.runLocked(method, t, params, false)
	}
	if aerr != nil {
		rec.failed(aerr)
		return aerr.status, aerr.body()
	}
	if method == "batch" {
		return http.StatusOK, nil
	}
	return http.StatusOK, envelope(res, start, s.nowLocked())
}

func envelope(res result, start, finish time.Time) obj {
	o := fields("result", res.value)
	if res.next != nil {
		o.Set("next", *res.next)
	}
	if res.total != nil {
		o.Set("total", *res.total)
	}
	return o.Set("time", timeInfo(start, finish, true))
}

// runLocked runs a method with a checked token, as a direct call or (sub) a
// batch sub-call, which differ only in the answers to a batch in a batch and
// to a missing scope. A direct batch passes with a zero result: runBatch
// does its work.
func (p *Portal) runLocked(method string, t *accessToken, params *omap, sub bool) (result, *apiError) {
	if method == "batch" {
		if sub {
			return result{}, apiErr(405, "ERROR_BATCH_METHOD_NOT_ALLOWED", "Method is not allowed for batch usage")
		}
		return result{}, nil
	}
	def, ok := p.table[method]
	switch {
	case !ok:
		return result{}, errMethodNotFound()
	case !p.s.hasScope(def.scope) && sub:
		// The batch docs show this sub-call error with an empty description.
		return result{}, apiErr(403, "insufficient_scope", "")
	case !p.s.hasScope(def.scope):
		return result{}, errScope()
	}
	c := &callCtx{userID: t.userID, user: p.users[t.userID], params: params}
	if def.admin && !c.user.Admin {
		return result{}, errAdminOnly()
	}
	return def.fn(c)
}
