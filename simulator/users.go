package simulator

import (
	"slices"
	"strconv"
	"strings"
	"time"
)

// The user scopes and what each lets user.get and user.current answer
// (rest/lib/api/user.php: ALLOWED_USER_NAME_FIELDS for user_brief,
// ALLOWED_USER_BASIC_FIELDS for user_basic, the default list for user;
// user-scope.md lists the same). The answer's keys follow the server's
// list order; only the fields the simulator's users have are listed, and
// one the user has not filled in is sent as an empty string, as the
// server sends an empty column. user_brief is the least that names users.
var (
	userBriefFields = []string{"ID", "ACTIVE", "NAME", "LAST_NAME", "SECOND_NAME", "IS_ONLINE", "TIME_ZONE",
		"TIMESTAMP_X", "DATE_REGISTER", "PERSONAL_GENDER", "PERSONAL_BIRTHDAY", "PERSONAL_CITY", "WORK_POSITION",
		"LAST_ACTIVITY_DATE", "UF_EMPLOYMENT_DATE", "UF_DEPARTMENT", "USER_TYPE"}
	userBasicFields = []string{"ID", "ACTIVE", "NAME", "LAST_NAME", "SECOND_NAME", "EMAIL", "WORK_POSITION",
		"IS_ONLINE", "TIME_ZONE", "TIMESTAMP_X", "DATE_REGISTER", "LAST_ACTIVITY_DATE", "PERSONAL_GENDER",
		"PERSONAL_BIRTHDAY", "PERSONAL_CITY", "UF_DEPARTMENT", "UF_EMPLOYMENT_DATE", "USER_TYPE"}
	userFullFields = []string{"ID", "ACTIVE", "NAME", "LAST_NAME", "SECOND_NAME", "EMAIL", "LAST_LOGIN",
		"DATE_REGISTER", "TIME_ZONE", "IS_ONLINE", "TIMESTAMP_X", "LAST_ACTIVITY_DATE", "PERSONAL_GENDER",
		"PERSONAL_BIRTHDAY", "PERSONAL_CITY", "WORK_POSITION", "UF_EMPLOYMENT_DATE", "UF_DEPARTMENT", "USER_TYPE"}
)

// userScopes is the scope list of the user methods: any one of them will do.
const userScopes = "user,user_brief,user_basic"

// userFields is the field list the app's scopes allow; the widest wins,
// as getAllowedUserFields checks user, then user_basic, then user_brief.
func (p *Portal) userFields() []string {
	switch {
	case p.s.hasScope("user"):
		return userFullFields
	case p.s.hasScope("user_basic"):
		return userBasicFields
	}
	return userBriefFields
}

// registered is when the seeded users joined: a fixed day, so answers are
// stable.
var registered = time.Date(2024, 7, 15, 0, 0, 0, 0, time.UTC)

// userRecord renders a user as user.get and user.current do: ID a string,
// ACTIVE a boolean, IS_ONLINE "Y"/"N", dates in ISO 8601, and the two
// DateTime objects (TIMESTAMP_X, LAST_ACTIVITY_DATE) as the {} the docs'
// recorded example shows.
func (p *Portal) userRecord(u User, online bool) obj {
	all := map[string]any{
		"ID": strconv.Itoa(u.ID), "ACTIVE": true, "NAME": u.Name, "LAST_NAME": u.LastName, "SECOND_NAME": "",
		"EMAIL": "", "LAST_LOGIN": "", "IS_ONLINE": yn(online), "TIME_ZONE": u.TimeZone,
		"TIMESTAMP_X": newObj(), "DATE_REGISTER": dateTime(registered), "LAST_ACTIVITY_DATE": newObj(),
		"PERSONAL_GENDER": "", "PERSONAL_BIRTHDAY": "", "PERSONAL_CITY": "", "WORK_POSITION": "",
		"UF_EMPLOYMENT_DATE": "", "UF_DEPARTMENT": []any{1}, "USER_TYPE": "employee",
	}
	out := newObj()
	for _, k := range p.userFields() {
		out.Set(k, all[k])
	}
	return out
}

// mUserCurrent answers with the token's user.
func (p *Portal) mUserCurrent(c *callCtx) (result, *apiError) {
	return okResult(p.userRecord(c.user, true))
}

// userParams are the parameters of user.get that are not filter fields.
var userParams = []string{"SORT", "ORDER", "ADMIN_MODE", "START", "IMAGE_RESIZE", "SELECT", "FILTER", "AUTH"}

// mUserGet is user.get: the users a filter selects, 50 per page, by ID
// unless SORT and ORDER say otherwise. The filter is FILTER, or, as the
// server keeps for backward compatibility, the parameters themselves.
// Only the allowed fields filter (others are ignored, as
// prepareUserFilter drops them); an array value means "any of" (the ORM's
// IN, so FILTER[ID][]=1&FILTER[ID][]=3 names users), and prefixes work as
// in the CRM lists. An empty page is [] without total, as
// prepareUserGetResult returns it.
func (p *Portal) mUserGet(c *callCtx) (result, *apiError) {
	src, _ := c.param("FILTER").(*omap)
	if src == nil {
		src = newOmap()
		for _, k := range c.params.keys {
			if !slices.Contains(userParams, strings.ToUpper(k)) {
				src.Set(k, c.params.vals[k])
			}
		}
	}
	allowed := append(slices.Clone(p.userFields()), "IS_ONLINE")
	filter := newOmap()
	for _, k := range src.keys {
		prefix, field := splitFilterKey(k)
		if !slices.Contains(allowed, strings.ToUpper(field)) {
			continue
		}
		v := src.vals[k]
		switch v.(type) {
		case *omap, []any: // a PHP array, from a form or from JSON
			if prefix == "" {
				prefix = "@"
			}
		}
		if strings.EqualFold(field, "ACTIVE") {
			v = activeFilter(v)
		}
		filter.Set(prefix+strings.ToUpper(field), v)
	}
	type match struct{ row, out obj }
	var found []match
	for _, id := range sortedKeys(p.users) {
		u := p.users[id]
		// Matched on the stored columns: ACTIVE is "Y" in the database.
		row := fields("ID", strconv.Itoa(u.ID), "ACTIVE", "Y", "NAME", u.Name, "LAST_NAME", u.LastName,
			"TIME_ZONE", u.TimeZone, "IS_ONLINE", yn(id == c.userID), "USER_TYPE", "employee")
		if matchFilter(row, filter) {
			found = append(found, match{row, p.userRecord(u, id == c.userID)})
		}
	}
	if by := strings.ToUpper(c.str("SORT")); by != "" && c.str("ORDER") != "" {
		desc := strings.EqualFold(c.str("ORDER"), "DESC")
		slices.SortStableFunc(found, func(a, b match) int {
			d := cmpValues(str(a.row.vals[by]), str(b.row.vals[by]))
			if desc {
				return -d
			}
			return d
		})
	}
	start := max(c.int("start"), 0)
	total := len(found)
	end := min(start+pageSize, total)
	page := []any{}
	sel := selectFields(c.param("SELECT"))
	for i := start; i < end; i++ {
		out := found[i].out
		if len(sel) > 0 && !slices.Contains(sel, "*") {
			kept := newObj()
			for _, k := range out.keys {
				if slices.Contains(sel, k) {
					kept.Set(k, out.vals[k])
				}
			}
			out = kept
		}
		page = append(page, out)
	}
	if len(page) == 0 {
		return okResult(page)
	}
	res := result{value: page, total: &total}
	if end < total {
		res.next = &end
	}
	return res, nil
}

// splitFilterKey splits a filter key into its operator prefix and field.
func splitFilterKey(k string) (prefix, field string) {
	for _, o := range []string{">=", "<=", "!@", "!=", "=%", "%=", ">", "<", "@", "%", "=", "!"} {
		if strings.HasPrefix(k, o) {
			return o, k[len(o):]
		}
	}
	return "", k
}

// activeFilter is prepareUserValue's ACTIVE: anything truthy but "N" is Y.
func activeFilter(v any) any {
	if s := str(v); s != "" && s != "N" && s != "0" {
		return "Y"
	}
	return "N"
}

// profileTimeZone is getProfile's TIME_ZONE and TIME_ZONE_OFFSET: the
// zone the user chose, "" when it is automatic, and the user's offset
// from UTC in seconds now (CTimeZone::GetOffset + date('Z')): the chosen
// zone's, or, when automatic, the one the user's browser reported.
func profileTimeZone(u User, now time.Time) (zone string, offset int) {
	if u.TimeZone == "" {
		return "", u.TimeZoneOffset
	}
	if loc, err := time.LoadLocation(u.TimeZone); err == nil {
		_, offset = now.In(loc).Zone()
		return u.TimeZone, offset
	}
	return u.TimeZone, u.TimeZoneOffset
}
