package simulator

import (
	"errors"
	"net/http"
)

// frameApp marks an APP_SID issued for the app's main page.
const frameApp = framePlacement + 1

// appName is the app's left-menu item.
func (p *Portal) appName() string {
	if p.s.app.Name != "" {
		return p.s.app.Name
	}
	return "Application"
}

// appMenuLocked is the left-menu item of the app: Bitrix24 adds it once
// an app with an Application URL is installed (and the install finished).
func (p *Portal) appMenuLocked() string {
	if p.state != installed || p.s.app.AppURL == "" {
		return ""
	}
	return p.appName()
}

// OpenApp builds the POST Bitrix24 sends into the iframe when the user
// opens the app from the left menu: the app's Application URL with
// PLACEMENT=DEFAULT and PLACEMENT_OPTIONS "{}", the same split payload as
// a placement (widgets/_includes/widget_data.md). It fails when the app
// has no AppURL or its install is not finished.
func (p *Portal) OpenApp(userID int, lang string) (Frame, error) {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	return p.openAppLocked(userID, lang)
}

func (p *Portal) openAppLocked(userID int, lang string) (Frame, error) {
	if p.s.app.AppURL == "" {
		return Frame{}, errors.New("simulator: App.AppURL is empty")
	}
	if p.state != installed {
		return Frame{}, errors.New("simulator: app install is not finished")
	}
	if _, ok := p.users[userID]; !ok {
		return Frame{}, errors.New("simulator: no such user")
	}
	return p.frameLocked(userID, frameApp, p.s.app.AppURL, "DEFAULT", nil, lang), nil
}

// appPage is the portal page behind the left-menu item: the app's main
// page in a frame, filled by a cross-site form POST exactly like a tab.
func (p *Portal) appPage(w http.ResponseWriter, r *http.Request, base pageBase) (string, any, int) {
	p.s.mu.Lock()
	base.Title = p.appName()
	f, err := p.openAppLocked(base.User.ID, base.Lang)
	p.s.mu.Unlock()
	if err != nil {
		return p.message(base, http.StatusNotFound, "Application not available", err.Error(), false)
	}
	pg := framePage{pageBase: base}
	p.frameFields(&pg, f, "app", "DEFAULT", nil, 0)
	return "app", pg, http.StatusOK
}
