<#
.SYNOPSIS
    The LabVIEW CI session lock, backed by lockd instead of a lock file.

.DESCRIPTION
    One LabVIEW session per machine at a time: CI jobs Acquire the session before they start LabVIEW,
    Heartbeat while they use it, and Release it when done; Inspect shows who has it.

    The old script kept a JSON lock file and had to guess whether its owner was still alive ("stale lock",
    exit 10). Here the lockd daemon holds the lock: a hold whose job stops heartbeating expires after
    its TTL, and the daemon releases it itself, so there is no stale lock for a job to find.

    Drop-in for the old script: same actions, SESSION_* variables, exit codes and GitHub outputs.
    See README.md for the exit-code table.

.PARAMETER Action
    Acquire | Release | Heartbeat | Inspect

.NOTES
    Environment (each parameter below defaults to it):
      SESSION_LOCK_NAME      lock name (default: labview-session); a host-wide lockd lock (--global)
      SESSION_QUEUE_TIMEOUT  seconds Acquire queues before giving up with exit 11 (default: 900)
      SESSION_TTL            seconds a hold lives without a Heartbeat, or 'none' (default: 1800)
      SESSION_HOLDER         who holds the session, shown by Inspect (default: lockd's CI-aware holder)
      SESSION_LOCK_ID        the hold id from Acquire; Release and Heartbeat need it
      SESSION_LOCKD          the lockd command (default: lockd)
    GitHub Actions: Acquire writes lock_id/holder/status to $GITHUB_OUTPUT and SESSION_LOCK_ID to
    $GITHUB_ENV (so later steps Release without passing it); Inspect writes status/holder/lock_json.
    (lockd acquire/release set status, lock_id and queue_wait_seconds themselves too; the lines this
    script writes come later, so the old values of status win.)
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory = $true, Position = 0)]
    [ValidateSet('Acquire', 'Release', 'Heartbeat', 'Inspect')]
    [string]$Action,
    [string]$LockName = $(if ($env:SESSION_LOCK_NAME) { $env:SESSION_LOCK_NAME } else { 'labview-session' }),
    [string]$QueueTimeout = $(if ($env:SESSION_QUEUE_TIMEOUT) { $env:SESSION_QUEUE_TIMEOUT } else { '900' }),
    [string]$Ttl = $(if ($env:SESSION_TTL) { $env:SESSION_TTL } else { '1800' }),
    [string]$Holder = $env:SESSION_HOLDER,
    [string]$LockId = $env:SESSION_LOCK_ID,
    [string]$Lockd = $(if ($env:SESSION_LOCKD) { $env:SESSION_LOCKD } else { 'lockd' })
)

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'

# The old script's exit codes (kept, so callers need no change).
$EXIT_OK = 0
$EXIT_NO_LOCK = 1          # Inspect: nobody holds the session
$EXIT_QUEUE_TIMEOUT = 11   # Acquire: still busy after SESSION_QUEUE_TIMEOUT
# 10 (stale lock) is never returned: lockd releases expired holds itself.

# lockd's exit codes that translate.
$LOCKD_NOT_OBTAINED = 75   # lockd acquire: the wait ran out
$LOCKD_FREE = 1            # lockd inspect: the lock is free

function Write-GitHubOutput([string]$Name, [string]$Value) {
    if ($env:GITHUB_OUTPUT) { Add-Content -Path $env:GITHUB_OUTPUT -Value "$Name=$Value" -Encoding utf8 }
}

function Write-GitHubEnv([string]$Name, [string]$Value) {
    if ($env:GITHUB_ENV) { Add-Content -Path $env:GITHUB_ENV -Value "$Name=$Value" -Encoding utf8 }
}

# Run lockd, echo its stderr as it comes, return stdout lines and the exit code.
function Invoke-Lockd([string[]]$Arguments) {
    $out = & $Lockd @Arguments
    return [pscustomobject]@{ Lines = @($out | ForEach-Object { "$_" }); Code = $LASTEXITCODE }
}

function Assert-LockId {
    if (-not $LockId) {
        Write-Error "Session-Lock: $Action needs the hold id from Acquire (SESSION_LOCK_ID or -LockId)"
        exit 2
    }
}

# A hold is its holder's: Heartbeat and Release must name the same holder Acquire used (lockd reads LOCKD_HOLDER).
if ($Holder) { $env:LOCKD_HOLDER = $Holder }

switch ($Action) {
    'Acquire' {
        $lockdArgs = @('acquire', '--global', $LockName, '--wait', $QueueTimeout, '--ttl', $Ttl)
        if ($Holder) { $lockdArgs += @('--holder', $Holder) }
        $r = Invoke-Lockd $lockdArgs
        if ($r.Code -eq $LOCKD_NOT_OBTAINED) {
            Write-Host "Session-Lock: '$LockName' still busy after $QueueTimeout s"
            Write-GitHubOutput 'status' 'queue_timeout'
            exit $EXIT_QUEUE_TIMEOUT
        }
        if ($r.Code -ne 0) { exit $r.Code }
        # lockd acquire prints LOCKD_HOLD_ID=<id> (a line meant for eval or $GITHUB_ENV).
        $idLine = $r.Lines | Where-Object { $_ -like 'LOCKD_HOLD_ID=*' } | Select-Object -Last 1
        if (-not $idLine) {
            Write-Error "Session-Lock: lockd acquire succeeded but printed no LOCKD_HOLD_ID line: $($r.Lines -join ' ')"
            exit 2
        }
        $id = $idLine.Substring('LOCKD_HOLD_ID='.Length)
        Write-Host "Session-Lock: acquired '$LockName' (hold $id)"
        Write-GitHubOutput 'lock_id' $id
        Write-GitHubOutput 'holder' $Holder
        Write-GitHubOutput 'status' 'acquired'
        Write-GitHubEnv 'SESSION_LOCK_ID' $id
        # Also for this PowerShell session, when the script is dot-sourced.
        $env:SESSION_LOCK_ID = $id
        exit $EXIT_OK
    }
    'Heartbeat' {
        Assert-LockId
        # lockd heartbeat: 0 renewed, 1 no such hold (expired, released) or not ours.
        $r = Invoke-Lockd @('heartbeat', $LockId)
        exit $r.Code
    }
    'Release' {
        Assert-LockId
        $r = Invoke-Lockd @('release', $LockId)
        if ($r.Code -eq 0) { Write-GitHubOutput 'status' 'released' }
        exit $r.Code
    }
    'Inspect' {
        $r = Invoke-Lockd @('inspect', $LockName, '--global', '--json')
        if ($r.Code -eq $LOCKD_FREE) {
            Write-Host "Session-Lock: '$LockName' is free"
            Write-GitHubOutput 'status' 'free'
            exit $EXIT_NO_LOCK
        }
        if ($r.Code -ne 0) { exit $r.Code }
        $json = $r.Lines -join "`n"
        # {"key", "held", "daemon", "lock": {..., "holders": [{"holder": ...}, ...]}}
        $info = $json | ConvertFrom-Json
        $who = ''
        if ($info.lock -and $info.lock.PSObject.Properties['holders'] -and @($info.lock.holders).Count -gt 0) {
            $who = "$(@($info.lock.holders)[0].holder)"
        }
        Write-Host "Session-Lock: '$LockName' is held$(if ($who) { " by $who" })"
        Write-GitHubOutput 'status' 'held'
        Write-GitHubOutput 'holder' $who
        Write-GitHubOutput 'lock_json' ($json -replace "`r?`n", ' ')
        exit $EXIT_OK
    }
}
