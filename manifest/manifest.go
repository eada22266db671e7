// Package manifest reads the "bitrix24" object of app.json: what the app
// asks for (scopes) and binds (placements, events). The app embeds app.json
// and binds exactly what it declares, so what the vendor enters in the
// Bitrix24 developer console and what the app binds cannot drift apart.
package manifest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Manifest is the "bitrix24" object of app.json. Handler is the app's main
// page (the console's "Application URL"), which Bitrix24 frames from the
// left menu with a POST and PLACEMENT=DEFAULT, as it frames placements.
// Scope lists every permission to enter in the console; OptionalScope
// those of them the app works without (it only shows less), so an
// install or an app page that lacks one is not refused for it.
type Manifest struct {
	Scope         []string          `json:"scope"`
	OptionalScope []string          `json:"optional_scope"`
	Install       string            `json:"install"`
	Handler       string            `json:"handler"`
	Placements    []Placement       `json:"placements"`
	Events        map[string]string `json:"events"`
	Robots        []Robot           `json:"robots"`
}

// Robot is an automation rule the app registers (bizproc.robot.add) and
// serves on Handler. Name and Description are keyed by Bitrix24 LANG
// code, "en" required. ReturnProperties are the values the rule hands
// back through bizproc.event.send, in the order the designer lists them.
type Robot struct {
	Code             string            `json:"code"`
	Handler          string            `json:"handler"`
	Name             map[string]string `json:"name"`
	Description      map[string]string `json:"description"`
	ReturnProperties []RobotProperty   `json:"return_properties"`
}

// RobotProperty is one return value of a robot: its code, its type in
// the designer's terms (string, int, bool, …) and its name by language.
type RobotProperty struct {
	Code string            `json:"code"`
	Type string            `json:"type"`
	Name map[string]string `json:"name"`
}

// Placement is one widget the app binds.
type Placement struct {
	Placement string            `json:"placement"`
	Handler   string            `json:"handler"`
	Title     map[string]string `json:"title"` // keyed by Bitrix24 LANG code; "en" required
}

// Event is one event binding, in a stable order.
type Event struct {
	Name    string
	Handler string
}

// Parse reads app.json and validates its "bitrix24" object.
func Parse(appJSON []byte) (*Manifest, error) {
	var doc struct {
		Bitrix24 *Manifest `json:"bitrix24"`
	}
	if err := json.Unmarshal(appJSON, &doc); err != nil {
		return nil, fmt.Errorf("manifest: app.json: %w", err)
	}
	m := doc.Bitrix24
	if m == nil {
		return nil, errors.New(`manifest: app.json has no "bitrix24" object`)
	}
	var problems []string
	if len(m.Scope) == 0 {
		problems = append(problems, "scope is empty")
	}
	for _, o := range m.OptionalScope {
		if !m.HasScope(o) {
			problems = append(problems, fmt.Sprintf("optional scope %s is not in scope", o))
		}
	}
	if len(m.Required()) == 0 {
		problems = append(problems, "every scope is optional")
	}
	if !strings.HasPrefix(m.Install, "/") {
		problems = append(problems, "install must be an absolute path")
	}
	if !strings.HasPrefix(m.Handler, "/") || m.Handler == m.Install {
		problems = append(problems, "handler must be an absolute path other than install")
	}
	for i, p := range m.Placements {
		if p.Placement == "" || !strings.HasPrefix(p.Handler, "/") {
			problems = append(problems, fmt.Sprintf("placement %d needs a code and an absolute handler path", i))
		}
		if p.Title["en"] == "" {
			problems = append(problems, fmt.Sprintf("placement %s needs an English title", p.Placement))
		}
	}
	problems = append(problems, m.robotProblems()...)
	for ev, h := range m.Events {
		if ev != strings.ToUpper(ev) || !strings.HasPrefix(h, "/") {
			problems = append(problems, fmt.Sprintf("event %s needs an upper-case name and an absolute handler path", ev))
		}
	}
	if len(problems) > 0 {
		return nil, errors.New("manifest: " + strings.Join(problems, "; "))
	}
	return m, nil
}

// robotCode and propertyCode are what bizproc.robot.add accepts
// (bizproc-robot-add.md): a code of letters, digits, dot, hyphen and
// underscore; a property's system name starting with a letter.
var (
	robotCode    = regexp.MustCompile(`^[a-zA-Z0-9._-]+$`)
	propertyCode = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_]*$`)
)

// robotProblems checks the robots: a robot needs the bizproc scope, a
// code Bitrix24 accepts, its own absolute handler path and English text.
func (m *Manifest) robotProblems() []string {
	var problems []string
	if len(m.Robots) > 0 && !m.HasScope("bizproc") {
		problems = append(problems, "robots need the bizproc scope")
	}
	seen := map[string]bool{}
	for i, r := range m.Robots {
		if !robotCode.MatchString(r.Code) || seen[r.Code] {
			problems = append(problems, fmt.Sprintf("robot %d needs a unique code of letters, digits, '.', '-' and '_'", i))
		}
		seen[r.Code] = true
		if !strings.HasPrefix(r.Handler, "/") || r.Handler == m.Install || r.Handler == m.Handler {
			problems = append(problems, fmt.Sprintf("robot %s needs an absolute handler path of its own", r.Code))
		}
		if r.Name["en"] == "" {
			problems = append(problems, fmt.Sprintf("robot %s needs an English name", r.Code))
		}
		for _, p := range r.ReturnProperties {
			if !propertyCode.MatchString(p.Code) || p.Type == "" || p.Name["en"] == "" {
				problems = append(problems, fmt.Sprintf("robot %s: return property %q needs a code starting with a letter, a type and an English name", r.Code, p.Code))
			}
		}
	}
	return problems
}

// EventList returns the events sorted by name.
func (m *Manifest) EventList() []Event {
	out := make([]Event, 0, len(m.Events))
	for n, h := range m.Events {
		out = append(out, Event{Name: n, Handler: h})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Placement returns the placement with that code.
func (m *Manifest) Placement(code string) (Placement, bool) {
	for _, p := range m.Placements {
		if p.Placement == code {
			return p, true
		}
	}
	return Placement{}, false
}

// Required lists the scopes the app cannot work without: Scope less
// OptionalScope.
func (m *Manifest) Required() []string {
	var out []string
	for _, s := range m.Scope {
		if !slices.Contains(m.OptionalScope, s) {
			out = append(out, s)
		}
	}
	return out
}

// HasScope reports whether the manifest asks for scope s.
func (m *Manifest) HasScope(s string) bool {
	for _, x := range m.Scope {
		if x == s {
			return true
		}
	}
	return false
}

// Absolute joins a handler path to the app's public base URL.
func Absolute(base *url.URL, path string) string {
	u := *base
	u.Path = strings.TrimRight(base.Path, "/") + path
	u.RawQuery, u.Fragment = "", ""
	return u.String()
}
