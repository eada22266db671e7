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
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	return append([]Call(nil), p.calls...)
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

func errorBody(code, desc string, extra map[string]any) obj {
	o := newObj().Set("error", code).Set("error_description", desc)
	for k, v := range extra {
		o.Set(k, v)
	}
	return o
}

// System errors, as in _includes/system-errors.md and the fact sheet §3.3.
func errNoAuth() *apiError {
	return &apiError{status: 401, code: "NO_AUTH_FOUND", desc: "Wrong authorization data"}
}

// errInvalidToken is the recorded answer for a token the portal does not
// know (never issued, revoked by a refresh or by an uninstall).
func errInvalidToken() *apiError {
	return &apiError{status: 401, code: "invalid_token", desc: "Unable to get application by token"}
}

// authError is the answer for a token that did not check out.
func authError(token string, st tokenState) *apiError {
	switch {
	case token == "":
		return errNoAuth()
	case st == tokenExpired:
		return errExpired()
	}
	return errInvalidToken()
}

func errExpired() *apiError {
	return &apiError{status: 401, code: "expired_token", desc: "The access token provided has expired."}
}
func errMethodNotFound() *apiError {
	return &apiError{status: 404, code: "ERROR_METHOD_NOT_FOUND", desc: "Method not found!"}
}
func errQueryLimit() *apiError {
	return &apiError{status: 503, code: "QUERY_LIMIT_EXCEEDED", desc: "Too many requests"}
}

// SILENT (docs disagree): the older system-errors page gives 403 for
// insufficient_scope, the newer one 401; the fact sheet's 403 is used.
func errScope() *apiError {
	return &apiError{status: 403, code: "insufficient_scope", desc: "The request requires higher privileges than provided by the access token"}
}

// errAdminOnly is Bitrix24's AccessException.
func errAdminOnly() *apiError {
	return &apiError{status: 403, code: "ACCESS_DENIED", desc: "Access denied!"}
}

// result is what a method returns: the value plus list paging fields.
type result struct {
	value any
	total *int
	next  *int
}

// callCtx is one method invocation. Methods run with Simulator.mu held.
type callCtx struct {
	p      *Portal
	userID int
	user   User
	params *omap
	token  *accessToken
}

// param returns a parameter by exact name, or case-insensitively.
func (c *callCtx) param(name string) (any, bool) { return c.params.GetFold(name) }

type methodFunc func(c *callCtx) (result, *apiError)

type methodDef struct {
	scope string
	fn    methodFunc
}

// timeInfo is the "time" object of every response (data-types.md#time).
func timeInfo(start, finish time.Time, withOperating bool) obj {
	dur := finish.Sub(start).Seconds()
	o := newObj().
		Set("start", unixFloat(start)).
		Set("finish", unixFloat(finish)).
		Set("duration", dur).
		Set("processing", dur).
		Set("date_start", start.Format("2006-01-02T15:04:05-07:00")).
		Set("date_finish", finish.Format("2006-01-02T15:04:05-07:00"))
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
	_, _ = w.Write(b)
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
	token := str(firstParam(params, "auth"))
	rec := Call{Time: start, Method: method, TokenPrefix: prefix4(token), Params: flatten(params)}

	s.mu.Lock()
	f, faulted := takeFaultLocked(&p.faults, method, false)
	if t, st := s.checkTokenLocked(token, p); st == tokenOK {
		rec.UserID = t.userID
	}
	s.mu.Unlock()
	if faulted && !f.AfterRun {
		s.log("portal %s: fault on %s", p.memberID, method)
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

func firstParam(m *omap, name string) any {
	v, _ := m.Get(name)
	return v
}

// record appends a call and returns its index.
func (p *Portal) record(c Call) int {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	p.calls = append(p.calls, c)
	return len(p.calls) - 1
}

// dispatchLocked runs the checks and the method. For batch it only checks
// (status 200 with a nil body means "go on with runBatch").
func (p *Portal) dispatchLocked(method, token string, params *omap, perr error, start time.Time, rec *Call) (int, any) {
	s := p.s
	fail := func(e *apiError) (int, any) {
		rec.Error, rec.ErrorDescription = e.code, e.desc
		return e.status, errorBody(e.code, e.desc, e.extra)
	}
	// SILENT: the order of checks is undocumented; the limiter counts every
	// request, authenticated or not, as limits.md counts "requests".
	if !p.bucket.allow() {
		return fail(errQueryLimit())
	}
	if perr != nil {
		// SILENT: Bitrix24's answer to an unparsable body is undocumented.
		return fail(&apiError{status: 400, code: "INVALID_REQUEST", desc: "Request body could not be parsed"})
	}
	// SILENT: "Authorization: Bearer" is undocumented (only an SDK comment
	// mentions it), so only the documented auth parameter is accepted.
	t, st := s.checkTokenLocked(token, p)
	if token == "" || st != tokenOK {
		return fail(authError(token, st))
	}
	def, ok := p.methods()[method]
	if !ok {
		return fail(errMethodNotFound())
	}
	if !s.hasScope(def.scope) {
		return fail(errScope())
	}
	if method == "batch" {
		return http.StatusOK, nil
	}
	c := &callCtx{p: p, userID: t.userID, user: p.users[t.userID], params: params, token: t}
	res, aerr := def.fn(c)
	if aerr != nil {
		return fail(aerr)
	}
	return http.StatusOK, envelope(res, start, s.nowLocked())
}

func envelope(res result, start, finish time.Time) obj {
	o := newObj().Set("result", res.value)
	if res.next != nil {
		o.Set("next", *res.next)
	}
	if res.total != nil {
		o.Set("total", *res.total)
	}
	o.Set("time", timeInfo(start, finish, true))
	return o
}

// callMethodLocked runs one method with a checked token, for batch sub-calls.
func (p *Portal) callMethodLocked(method string, t *accessToken, params *omap) (result, *apiError) {
	if method == "batch" {
		return result{}, &apiError{status: 405, code: "ERROR_BATCH_METHOD_NOT_ALLOWED", desc: "Method is not allowed for batch usage"}
	}
	def, ok := p.methods()[method]
	if !ok {
		return result{}, errMethodNotFound()
	}
	if !p.s.hasScope(def.scope) {
		// The batch docs show this sub-call error with an empty description.
		return result{}, &apiError{status: 403, code: "insufficient_scope", desc: ""}
	}
	c := &callCtx{p: p, userID: t.userID, user: p.users[t.userID], params: params, token: t}
	return def.fn(c)
}
