// Package state holds the security state a p11kms node keeps per request:
// replay memory and rate limits, in process or shared by every node through
// Redis.
package state
