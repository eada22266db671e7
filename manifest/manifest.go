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
