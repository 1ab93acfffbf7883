package notices

import "strings"

// ValidNHSNumber reports whether s is a 10-digit NHS number whose check
// digit is right (NHS Data Dictionary, "NHS Number": modulus 11, weights
// 10 down to 2 on the first nine digits; 11 → 0, 10 → invalid). Spaces
// and hyphens between digit groups are allowed ("943 476 5919").
func ValidNHSNumber(s string) bool {
	d := normaliseNHSNumber(s)
	if len(d) != 10 {
		return false
	}
	sum := 0
	for i := range 9 {
		sum += int(d[i]-'0') * (10 - i)
	}
	check := 11 - sum%11
	if check == 11 {
		check = 0
	}
	return check != 10 && check == int(d[9]-'0')
}

// normaliseNHSNumber drops spaces and hyphens; it returns "" if anything
// else than digits remains.
func normaliseNHSNumber(s string) string {
	d := strings.NewReplacer(" ", "", "-", "").Replace(s)
	for _, c := range d {
		if c < '0' || c > '9' {
			return ""
		}
	}
	return d
}
