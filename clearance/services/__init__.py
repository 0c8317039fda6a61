"""The HM lifecycle's services, one module per flow. Every status change goes through
``clearance.state``; HM calls go through ``clearance.clients``; transient HM errors propagate to
the task that called (it retries), permanent ones are written on the clearance in words."""
