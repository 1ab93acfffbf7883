package certs

// VerifiedChains is how many verified chains t has cached.
func VerifiedChains(t *Trust) int { return t.verified.len() }
