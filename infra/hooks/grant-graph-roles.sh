#!/bin/sh
# grant-graph-roles.sh <principal id> [--photos]
#
# Grants the Microsoft Graph application permissions entrasync reads with to a
# service principal: User.Read.All and GroupMember.Read.All, and with --photos
# ProfilePhoto.Read.All. <principal id> is the object id of the managed
# identity's service principal (the Bicep output MANAGED_IDENTITY_PRINCIPAL_ID).
#
# Idempotent: a role already granted is left as it is, so running it again is
# safe. It uses the Azure CLI's login (az rest picks the Graph token itself); the
# signed-in user needs a role that may grant Graph app roles (Privileged Role
# Administrator or Global Administrator). Bicep cannot make this grant
# portably, which is why it is a script; docs/deploy.md has the same calls
# step by step.
set -eu

usage() {
	echo "usage: $0 <service principal object id> [--photos]" >&2
	exit 2
}
[ $# -ge 1 ] || usage
principal=$1
shift
roles="User.Read.All GroupMember.Read.All"
case "${1:-}" in
"") ;;
--photos) roles="$roles ProfilePhoto.Read.All" ;;
*) usage ;;
esac

# Microsoft Graph's well-known application id, the same in every tenant.
graph_app_id=00000003-0000-0000-c000-000000000000
graph=${GRAPH_ENDPOINT:-https://graph.microsoft.com}

graph_sp=$(az rest --method GET \
	--url "$graph/v1.0/servicePrincipals(appId='$graph_app_id')?\$select=id" \
	--query id --output tsv)

for role in $roles; do
	role_id=$(az rest --method GET \
		--url "$graph/v1.0/servicePrincipals/$graph_sp?\$select=appRoles" \
		--query "appRoles[?value=='$role' && contains(allowedMemberTypes, 'Application')].id | [0]" --output tsv)
	if [ -z "$role_id" ]; then
		echo "Microsoft Graph has no application permission $role" >&2
		exit 1
	fi
	# A managed identity created minutes ago may not have replicated yet:
	# retry for about two minutes before giving up.
	tries=0
	while :; do
		if existing=$(az rest --method GET \
			--url "$graph/v1.0/servicePrincipals/$principal/appRoleAssignments" \
			--query "value[?appRoleId=='$role_id' && resourceId=='$graph_sp'].id | [0]" --output tsv 2>/dev/null); then
			break
		fi
		tries=$((tries + 1))
		if [ $tries -ge 6 ]; then
			echo "service principal $principal was not found; is it the managed identity's principal (object) id?" >&2
			exit 1
		fi
		sleep 20
	done
	if [ -n "$existing" ]; then
		echo "$role: already granted"
		continue
	fi
	az rest --method POST \
		--url "$graph/v1.0/servicePrincipals/$principal/appRoleAssignments" \
		--headers Content-Type=application/json \
		--body "{\"principalId\":\"$principal\",\"resourceId\":\"$graph_sp\",\"appRoleId\":\"$role_id\"}" \
		--output none
	echo "$role: granted"
done
