package simulator

import (
	"cmp"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// automationView is the lead card's automation panel: the stage control a
// user moves the lead with, the admin's control that puts a robot on a
// stage (the automation designer, reduced), and the robots' log.
type automationView struct {
	Stages   []string
	Robots   []robotOption // registered robots, for the admin's control
	OnStages []string      // "STAGE: code" of the robots put on stages
	Log      []robotLogRow
	// Pending says a run has not been answered yet: the page reloads
	// itself until it is (an app that queues its runs answers later).
	Pending bool
}

// robotOption is a registered robot as the designer lists it: by its
// name in the page's language (the registration's English one, or its
// only one, otherwise).
type robotOption struct{ Code, Name string }

type robotLogRow struct {
	Time, Code, Stage, State string
	UserID                   int
	Returns                  string
	Message                  string
}

// automationLocked fills the panel for one lead.
func (p *Portal) automationLocked(leadID int, lang string) automationView {
	v := automationView{Stages: leadStages}
	for _, r := range p.robots {
		name := r.Name[lang]
		if name == "" {
			name = cmp.Or(r.Name["en"], r.Name[""], r.Code)
		}
		v.Robots = append(v.Robots, robotOption{Code: r.Code, Name: name})
	}
	for _, a := range p.automations {
		blocked := ""
		if !slices.ContainsFunc(p.robots, func(r Robot) bool { return r.Code == a.Code }) {
			blocked = " (blocked)"
		}
		v.OnStages = append(v.OnStages, a.Stage+": "+a.Code+blocked)
	}
	for _, r := range p.runs {
		if r.LeadID != leadID {
			continue
		}
		row := robotLogRow{Time: r.Time.Format("2006-01-02 15:04:05"), Code: r.Code, Stage: r.Stage, UserID: r.UserID, Message: r.LogMessage}
		switch {
		case r.Status == 0 && r.Error == "":
			row.State = "queued"
		case r.Error != "" || r.Status < 200 || r.Status > 299:
			row.State = "handler failed (" + strconv.Itoa(r.Status) + ")"
		case r.Completed:
			row.State = "completed"
		default:
			row.State = "waiting for the application"
		}
		v.Pending = v.Pending || !r.Completed && r.Error == "" && r.Status < 300
		var parts []string
		for _, k := range sortedKeys(r.ReturnValues) {
			parts = append(parts, k+"="+r.ReturnValues[k])
		}
		row.Returns = strings.Join(parts, ", ")
		v.Log = append(v.Log, row)
	}
	slices.Reverse(v.Log) // newest first
	return v
}

// moveStage is the stage control on the lead card: the user moves the
// lead, and the stage's robots are delivered before the page comes back.
func (p *Portal) moveStage(w http.ResponseWriter, r *http.Request, base pageBase) (string, any, int) {
	id, _ := strconv.Atoi(r.PathValue("id"))
	if _, err := p.MoveLead(r.Context(), base.User.ID, id, r.PostFormValue("stage")); err != nil {
		return p.message(base, http.StatusForbidden, "Cannot move the lead", strings.TrimPrefix(err.Error(), "simulator: "), false)
	}
	http.Redirect(w, r, "/crm/lead/details/"+strconv.Itoa(id)+"/", http.StatusSeeOther)
	return "", nil, 0
}

// addAutomation is the admin's control that puts a robot on a stage.
func (p *Portal) addAutomation(w http.ResponseWriter, r *http.Request, base pageBase) (string, any, int) {
	if !base.User.Admin {
		return p.message(base, http.StatusForbidden, "Access denied", "Only administrators can set up automation.", false)
	}
	runAs, _ := strconv.Atoi(r.PostFormValue("run_as"))
	if err := p.AddAutomation(r.PostFormValue("stage"), r.PostFormValue("code"), runAs); err != nil {
		return p.message(base, http.StatusBadRequest, "Cannot add the robot", strings.TrimPrefix(err.Error(), "simulator: "), false)
	}
	lead, _ := strconv.Atoi(r.PostFormValue("lead"))
	http.Redirect(w, r, "/crm/lead/details/"+strconv.Itoa(max(lead, 1))+"/", http.StatusSeeOther)
	return "", nil, 0
}
