package simulator

import (
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// Robot is an automation rule registered with bizproc.robot.add.
// Name and Description keep what was sent: a string under "", or one
// entry per language.
type Robot struct {
	Code, Handler    string
	AuthUserID       int
	UseSubscription  string // "Y", "N" or "" (empty waits, as "Y" does)
	UsePlacement     bool
	PlacementHandler string
	Name             map[string]string
	Description      map[string]string
	// Properties and ReturnProperties are the parameter codes in the order
	// registered; PropertyDefaults the Default of each property that has one.
	Properties       []string
	PropertyDefaults map[string]string
	ReturnProperties []string
}

// waits reports whether a run of the robot waits for bizproc.event.send:
// bizproc-robot-add.md, "by default the parameter is empty, which is
// equivalent to waiting"; only an explicit N does not.
func (r Robot) waits() bool { return r.UseSubscription != "N" }

// Errors of the bizproc REST service, as its source (Bitrix\Bizproc\
// RestService) throws them: RestException answers 400. The texts follow
// the server; the docs translate "Robot" as "Automation rule".
func errRobotInvalid(desc string) *apiError {
	return apiErr(400, "ERROR_ACTIVITY_VALIDATION_FAILURE", desc)
}

func errRobotNotFound() *apiError {
	return apiErr(400, "ERROR_ACTIVITY_NOT_FOUND", "Activity or Robot not found!")
}

var (
	robotCodeRe = regexp.MustCompile(`^[a-zA-Z0-9.\-_]+$`)
	propKeyRe   = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_]*$`)
)

func checkRobotCode(code string) *apiError {
	if code == "" {
		return errRobotInvalid("Empty activity code!")
	}
	if !robotCodeRe.MatchString(code) {
		return errRobotInvalid("Wrong activity code!")
	}
	return nil
}

// checkRobotHandler is RestService::validateActivityHandler: the URL rule
// every handler shares (checkHandlerURL), then "the link must have the
// same domain as the one where the application is installed": the host
// must be the host of the app's URL or installer URL (a "localhost" app
// URL matches any). SILENT: an app with neither URL is not checked.
func (p *Portal) checkRobotHandler(raw string) *apiError {
	if e := p.checkHandlerURL(raw); e != nil {
		return e
	}
	u, _ := url.Parse(raw) // parsed by checkHandlerURL
	var hosts []string
	for _, appURL := range []string{p.s.app.AppURL, p.s.app.InstallURL} {
		if a, err := url.Parse(appURL); err == nil && a.Hostname() != "" {
			hosts = append(hosts, strings.ToLower(a.Hostname()))
		}
	}
	if len(hosts) == 0 || slices.Contains(hosts, "localhost") || slices.Contains(hosts, strings.ToLower(u.Hostname())) {
		return nil
	}
	return apiErr(400, "ERROR_HANDLER_URL_MATCH", "Handler URL host doesn't match application url")
}

// localized reads NAME or DESCRIPTION: a string, or a map of languages.
func localized(v any) map[string]string {
	out := map[string]string{}
	if m, ok := v.(*omap); ok {
		for _, k := range m.keys {
			if s := str(m.vals[k]); s != "" {
				out[strings.ToLower(k)] = s
			}
		}
		return out
	}
	if s := str(v); s != "" {
		out[""] = s
	}
	return out
}

// robotProperties validates PROPERTIES or RETURN_PROPERTIES as
// RestService::validateActivityProperties does and returns the codes in
// order with the defaults. The fields of one property are matched
// case-insensitively (the service upper-cases them).
func robotProperties(v any) ([]string, map[string]string, *apiError) {
	m, ok := v.(*omap)
	if !ok {
		if l, isList := v.([]any); isList && len(l) > 0 {
			return nil, nil, errRobotInvalid("Wrong property key (0)!")
		} else if !isList {
			return nil, nil, errRobotInvalid("Wrong properties array!")
		}
		return nil, nil, nil
	}
	var codes []string
	defaults := map[string]string{}
	for _, k := range m.keys {
		if !propKeyRe.MatchString(k) {
			return nil, nil, errRobotInvalid("Wrong property key (" + k + ")!")
		}
		prop, _ := m.vals[k].(*omap)
		if len(localized(prop.fold("NAME"))) == 0 {
			return nil, nil, errRobotInvalid("Empty property NAME (" + k + ")!")
		}
		codes = append(codes, k)
		if d, has := prop.GetFold("DEFAULT"); has {
			defaults[k] = str(d)
		}
	}
	return codes, defaults, nil
}

// applyRobotFields validates the fields of bizproc.robot.add or of
// FIELDS in bizproc.robot.update, in the service's order, onto r; add
// requires HANDLER and NAME.
func (p *Portal) applyRobotFields(f *omap, r *Robot, add bool) *apiError {
	if h, has := f.GetFold("HANDLER"); has || add {
		if e := p.checkRobotHandler(strings.TrimSpace(str(h))); e != nil {
			return e
		}
		r.Handler = strings.TrimSpace(str(h))
	}
	if n, has := f.GetFold("NAME"); has || add {
		if r.Name = localized(n); len(r.Name) == 0 {
			return errRobotInvalid("Empty activity NAME!")
		}
	}
	if d, has := f.GetFold("DESCRIPTION"); has {
		r.Description = localized(d)
	}
	if v, has := f.GetFold("PROPERTIES"); has {
		codes, defs, e := robotProperties(v)
		if e != nil {
			return e
		}
		r.Properties, r.PropertyDefaults = codes, defs
	}
	if v, has := f.GetFold("RETURN_PROPERTIES"); has {
		codes, _, e := robotProperties(v)
		if e != nil {
			return e
		}
		r.ReturnProperties = codes
	}
	if v, has := f.GetFold("DOCUMENT_TYPE"); has {
		if l := list(v); len(l) != 3 || str(l[0]) == "" || str(l[1]) == "" || str(l[2]) == "" {
			return errRobotInvalid("Wrong activity DOCUMENT_TYPE!")
		}
	}
	if v, has := f.GetFold("FILTER"); has {
		_, isMap := v.(*omap)
		_, isList := v.([]any)
		if !isMap && !isList {
			return errRobotInvalid("Wrong activity FILTER!")
		}
	}
	if v, has := f.GetFold("AUTH_USER_ID"); has {
		r.AuthUserID = phpInt(v)
	}
	if v, has := f.GetFold("USE_SUBSCRIPTION"); has {
		r.UseSubscription = strings.ToUpper(str(v))
	}
	if v, has := f.GetFold("PLACEMENT_HANDLER"); has {
		r.PlacementHandler = strings.TrimSpace(str(v))
	}
	if v, has := f.GetFold("USE_PLACEMENT"); has {
		r.UsePlacement = strings.EqualFold(str(v), "Y")
	}
	// The legacy docs (bizproc_robot_add.php): USE_PLACEMENT=Y without a
	// PLACEMENT_HANDLER is ERROR_WRONG_HANDLER_URL.
	if r.UsePlacement {
		if r.PlacementHandler == "" {
			return apiErr(400, "ERROR_WRONG_HANDLER_URL", "Wrong handler URL")
		}
		return p.checkRobotHandler(r.PlacementHandler)
	}
	return nil
}

// robotParams is the method's parameters without the token.
func robotParams(c *callCtx) *omap {
	m := newOmap()
	for _, k := range c.params.keys {
		if k != "auth" {
			m.Set(k, c.params.vals[k])
		}
	}
	return m
}

// mRobotAdd is bizproc.robot.add (admin only: the method table's admin
// flag answers 403 ACCESS_DENIED, AccessException). Every simulated token
// is an application's, so "Application context required" cannot happen.
func (p *Portal) mRobotAdd(c *callCtx) (result, *apiError) {
	params := robotParams(c)
	if params.Len() == 0 {
		return result{}, errRobotInvalid("Empty data!")
	}
	code := strings.TrimSpace(str(params.fold("CODE")))
	if e := checkRobotCode(code); e != nil {
		return result{}, e
	}
	r := Robot{Code: code}
	if e := p.applyRobotFields(params, &r, true); e != nil {
		return result{}, e
	}
	if slices.ContainsFunc(p.robots, func(have Robot) bool { return have.Code == code }) {
		return result{}, apiErr(400, "ERROR_ACTIVITY_ALREADY_INSTALLED", "Activity or Robot already installed!")
	}
	p.robots = append(p.robots, r)
	p.s.log("portal %s: robot %s registered", p.memberID, code)
	return okResult(true)
}

// findRobot resolves CODE for update and delete.
func (p *Portal) findRobot(c *callCtx) (int, *apiError) {
	code := strings.TrimSpace(c.str("CODE"))
	if e := checkRobotCode(code); e != nil {
		return -1, e
	}
	i := slices.IndexFunc(p.robots, func(r Robot) bool { return r.Code == code })
	if i < 0 {
		return -1, errRobotNotFound()
	}
	return i, nil
}

func (p *Portal) mRobotUpdate(c *callCtx) (result, *apiError) {
	i, e := p.findRobot(c)
	if e != nil {
		return result{}, e
	}
	f, _ := c.param("FIELDS").(*omap)
	if f == nil || f.Len() == 0 {
		return result{}, errRobotInvalid("No fields to update")
	}
	r := p.robots[i]
	if e := p.applyRobotFields(f, &r, false); e != nil {
		return result{}, e
	}
	p.robots[i] = r
	return okResult(true)
}

// mRobotDelete removes the registration; stages that use the robot keep
// it but skip it (bizproc-robot-delete.md: a robot in use is blocked).
func (p *Portal) mRobotDelete(c *callCtx) (result, *apiError) {
	i, e := p.findRobot(c)
	if e != nil {
		return result{}, e
	}
	p.robots = slices.Delete(p.robots, i, i+1)
	return okResult(true)
}

// mRobotList answers the codes, in the order registered (no paging, as
// in the docs' example).
func (p *Portal) mRobotList(c *callCtx) (result, *apiError) {
	out := []any{}
	for _, r := range p.robots {
		out = append(out, r.Code)
	}
	return okResult(out)
}

// Robots returns the registered automation rules.
func (p *Portal) Robots() []Robot {
	return locked(p.s, func() []Robot { return slices.Clone(p.robots) })
}
