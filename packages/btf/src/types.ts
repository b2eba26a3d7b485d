/** BTF kind numbers (include/uapi/linux/btf.h). */
export const BTF_KIND = {
  UNKN: 0,
  INT: 1,
  PTR: 2,
  ARRAY: 3,
  STRUCT: 4,
  UNION: 5,
  ENUM: 6,
  FWD: 7,
  TYPEDEF: 8,
  VOLATILE: 9,
  CONST: 10,
  RESTRICT: 11,
  FUNC: 12,
  FUNC_PROTO: 13,
  VAR: 14,
  DATASEC: 15,
  FLOAT: 16,
  DECL_TAG: 17,
  TYPE_TAG: 18,
  ENUM64: 19,
} as const;
export const BTF_KIND_MAX = 19;

export const BTF_MAGIC = 0xeb9f;
export const BTF_VERSION = 1;
export const BTF_HEADER_LEN = 24;
/** Largest type id the kernel accepts (BTF_MAX_TYPE). */
export const BTF_MAX_TYPE = 0x000fffff;
/** Largest string offset the kernel accepts (BTF_MAX_NAME_OFFSET). */
export const BTF_MAX_NAME_OFFSET = 0x00ffffff;
/** Largest vlen (BTF_MAX_VLEN). */
export const BTF_MAX_VLEN = 0xffff;

/** BTF_INT_ENCODING bits. */
export const BTF_INT_SIGNED = 1 << 0;
export const BTF_INT_CHAR = 1 << 1;
export const BTF_INT_BOOL = 1 << 2;

/** Function and variable linkage (enum btf_func_linkage / BTF_VAR_*). */
export const BTF_FUNC_STATIC = 0;
export const BTF_FUNC_GLOBAL = 1;
export const BTF_FUNC_EXTERN = 2;
export const BTF_VAR_STATIC = 0;
export const BTF_VAR_GLOBAL_ALLOCATED = 1;
export const BTF_VAR_GLOBAL_EXTERN = 2;

/** Lower-case kind names as used in the type model's `kind` field. */
export type BtfKindName =
  | 'int'
  | 'ptr'
  | 'array'
  | 'struct'
  | 'union'
  | 'enum'
  | 'fwd'
  | 'typedef'
  | 'volatile'
  | 'const'
  | 'restrict'
  | 'func'
  | 'func_proto'
  | 'var'
  | 'datasec'
  | 'float'
  | 'decl_tag'
  | 'type_tag'
  | 'enum64';

/** Kind number -> model kind name; index 0 (UNKN / void) has no model type. */
export const KIND_NAMES: readonly (BtfKindName | 'unkn')[] = [
  'unkn',
  'int',
  'ptr',
  'array',
  'struct',
  'union',
  'enum',
  'fwd',
  'typedef',
  'volatile',
  'const',
  'restrict',
  'func',
  'func_proto',
  'var',
  'datasec',
  'float',
  'decl_tag',
  'type_tag',
  'enum64',
];

export function kindNumber(kind: BtfKindName): number {
  return KIND_NAMES.indexOf(kind);
}

/** Upper-case kind string as the kernel's btf_type_str() and bpftool print it. */
export function kindString(kind: number): string {
  const n = KIND_NAMES[kind];
  return n === undefined ? 'UNKN' : n.toUpperCase();
}

export interface BtfInt {
  kind: 'int';
  name: string;
  /** Size in bytes (1, 2, 4, 8 or 16). */
  size: number;
  /** BTF_INT_SIGNED | BTF_INT_CHAR | BTF_INT_BOOL (at most one is valid). */
  encoding: number;
  /** Bit offset of the value inside its storage (old-style bitfields). */
  bitsOffset: number;
  /** Number of value bits. */
  bits: number;
}

export interface BtfPtr {
  kind: 'ptr';
  type: number;
}

export interface BtfArray {
  kind: 'array';
  type: number;
  indexType: number;
  nelems: number;
}

export interface BtfMember {
  /** Empty for an anonymous struct/union member. */
  name: string;
  type: number;
  /** Offset from the start of the containing type, in bits. */
  bitsOffset: number;
  /** Bitfield width in bits; 0 when the member is not a bitfield. */
  bitfieldSize: number;
}

export interface BtfComposite {
  kind: 'struct' | 'union';
  /** Empty for an anonymous struct/union. */
  name: string;
  size: number;
  members: BtfMember[];
}

export interface BtfEnumValue {
  name: string;
  value: number;
}

export interface BtfEnum {
  kind: 'enum';
  name: string;
  /** 1, 2, 4 or 8 bytes. */
  size: number;
  /** kflag: values are signed. */
  signed: boolean;
  values: BtfEnumValue[];
}

export interface BtfEnum64Value {
  name: string;
  value: bigint;
}

export interface BtfEnum64 {
  kind: 'enum64';
  name: string;
  size: number;
  signed: boolean;
  values: BtfEnum64Value[];
}

export interface BtfFwd {
  kind: 'fwd';
  name: string;
  /** kflag: a forward declaration of a union rather than a struct. */
  union: boolean;
}

export interface BtfTypedef {
  kind: 'typedef';
  name: string;
  type: number;
}

export interface BtfModifier {
  kind: 'volatile' | 'const' | 'restrict';
  type: number;
}

export interface BtfTypeTag {
  kind: 'type_tag';
  name: string;
  type: number;
}

export interface BtfFunc {
  kind: 'func';
  name: string;
  /** The FUNC_PROTO type id. */
  type: number;
  /** BTF_FUNC_STATIC, BTF_FUNC_GLOBAL or BTF_FUNC_EXTERN. */
  linkage: number;
}

export interface BtfParam {
  /** Empty when the prototype does not name it. */
  name: string;
  /** 0 (void) on the last parameter means variadic `...`. */
  type: number;
}

export interface BtfFuncProto {
  kind: 'func_proto';
  returnType: number;
  params: BtfParam[];
}

export interface BtfVar {
  kind: 'var';
  name: string;
  type: number;
  linkage: number;
}

export interface BtfVarSecinfo {
  type: number;
  offset: number;
  size: number;
}

export interface BtfDatasec {
  kind: 'datasec';
  name: string;
  size: number;
  vars: BtfVarSecinfo[];
}

export interface BtfFloat {
  kind: 'float';
  name: string;
  size: number;
}

export interface BtfDeclTag {
  kind: 'decl_tag';
  name: string;
  type: number;
  /** -1 tags the type itself; otherwise a member or parameter index. */
  componentIdx: number;
}

/** One BTF type. Type references are ids; id 0 is void. */
export type BtfType =
  | BtfInt
  | BtfPtr
  | BtfArray
  | BtfComposite
  | BtfEnum
  | BtfEnum64
  | BtfFwd
  | BtfTypedef
  | BtfModifier
  | BtfTypeTag
  | BtfFunc
  | BtfFuncProto
  | BtfVar
  | BtfDatasec
  | BtfFloat
  | BtfDeclTag;

/** The type's name, or '' for kinds that have none. */
export function typeName(t: BtfType): string {
  return 'name' in t ? t.name : '';
}
