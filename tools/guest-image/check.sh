# Health check of the ha_guest test image: fails with the reason `ha-guest-ctl fail-check` wrote.
reason=$(cat /run/ha-guest-ctl/check-fail 2>/dev/null)
[ -z "$reason" ] && exit 0
echo "$reason"
exit 1
