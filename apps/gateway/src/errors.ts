import {
  ErrnoCodeSchema,
  TracelabError,
  type ErrnoCode,
  type ErrorEnvelope,
} from '@tracelab/contracts';
import { isBusError } from '@tracelab/bus';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';

/** HTTP status for each errno a layer or the bus may answer with; anything else is a 500. */
const STATUS: Partial<Record<ErrnoCode, number>> = {
  EINVAL: 400,
  ENOEXEC: 400,
  EFAULT: 400,
  ELOOP: 400,
  E2BIG: 413,
  EBADF: 404,
  ENODEV: 404,
  ERANGE: 400,
  EACCES: 403,
  EPERM: 403,
  ENOENT: 404,
  ESRCH: 404,
  EEXIST: 409,
  EBUSY: 409,
  ENOSPC: 507,
  EOPNOTSUPP: 501,
  ENOTSUPP: 501,
  ENOSYS: 501,
  EHOSTUNREACH: 503,
  ESHUTDOWN: 503,
  ETIMEDOUT: 504,
  EIO: 502,
  EAGAIN: 429,
};

function validationEnvelope(err: FastifyError): ErrorEnvelope {
  const where = err.validationContext ?? 'request';
  const issues = (err.validation ?? []).map((v) => ({
    path: [where, ...v.instancePath.split('/').filter((p) => p !== '')],
    message: v.message ?? 'invalid',
  }));
  const first = issues[0];
  return {
    code: 'EINVAL',
    errno: 22,
    message: first ? `invalid ${first.path.join('.')}: ${first.message}` : `invalid ${where}`,
    details: { path: first?.path ?? [where], issues },
  };
}

export function notFoundHandler(request: FastifyRequest, reply: FastifyReply): void {
  void reply
    .code(404)
    .send(new TracelabError('ENOENT', `no route ${request.method} ${request.url}`).toEnvelope());
}

/** Maps every error to the wire envelope; bad input is a 400 naming the field, never a 500. */
export function errorHandler(
  err: FastifyError,
  request: FastifyRequest,
  reply: FastifyReply,
): void {
  if (hasZodFastifySchemaValidationErrors(err)) {
    void reply.code(400).send(validationEnvelope(err));
    return;
  }
  if (err instanceof TracelabError) {
    void reply.code(STATUS[err.code] ?? 500).send(err.toEnvelope());
    return;
  }
  if (isBusError(err)) {
    const parsed = ErrnoCodeSchema.safeParse(err.code);
    const code: ErrnoCode = parsed.success ? parsed.data : 'EIO';
    void reply.code(STATUS[code] ?? 502).send(new TracelabError(code, err.message).toEnvelope());
    return;
  }
  // Fastify's own 4xx (bad JSON body, unsupported media type, too large) are the client's fault.
  const status = err.statusCode ?? 500;
  if (status >= 400 && status < 500) {
    const code: ErrnoCode = status === 413 ? 'E2BIG' : status === 404 ? 'ENOENT' : 'EINVAL';
    void reply.code(status).send(new TracelabError(code, err.message).toEnvelope());
    return;
  }
  request.log.error({ err }, 'request failed');
  void reply.code(500).send(new TracelabError('EIO', 'internal error').toEnvelope());
}
