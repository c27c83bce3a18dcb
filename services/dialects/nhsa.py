"""The national platform's dialect: 3101/3102 (明细审核事前/事中分析服务) and 3103 (反馈服务).

Request envelope → one *plan* per ``patient_dtos[]`` entry:

* the current visit (``curr_mdtrt_id``) becomes ONE native event at the request's
  ``trig_scen``; its event id is a digest of the mapped facts (``nhsa-<scene>-<digest>``),
  so the same request sent again is a retry of the same event and is answered from the
  recorded decision;
* every other encounter in ``fsi_encounter_dtos`` is *history*: it becomes native
  event(s) with deterministic ids (``nhsa-h<scene>-<mdtrt_id>-<digest>``) that the
  ingress writes, in time order, before the current event on the patient's partition:
  an outpatient visit → scene 6 (10 at a pharmacy) with its orders; an inpatient stay →
  scene 3 at ``adm_date`` plus, when discharged, scene 8 at ``dscg_date``. Their alerts are
  not reported. See docs/integration.md for why re-sending history is idempotent.

Alerts → ``output.result[]`` (``jr_id`` = the alert id, so 3103 feedback joins back).

What real clients send is accepted: unknown vendor fields are ignored; blank strings (and
``"-"``/``"null"`` for amounts) count as absent; numbers may be numeric strings; a single object
where the specification has a list (``patient_dtos``, ``fsi_encounter_dtos``, …) is a list of one;
``syscode``, ``task_id`` and ``msgid`` are optional (see :func:`task_key`). What is truly missing
is refused with the field's path and its Chinese name (:func:`describe`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from services.contracts.decision import Alert, Decision
from services.contracts.event import Event
from services.dialects.common import (
    Code,
    CodeMax,
    Day,
    Ident,
    Lenient,
    Number,
    Timestamp,
    digest,
    first_error,
    safe_id,
)
from services.dialects.exceptions import MappingError
from services.dialects.feedback import REASON_MAX, Outcome
from services.dialects.feedback import record as feedback_record

ANALYSIS_INFNOS = ("3101", "3102")
BLANK_AMOUNTS = frozenset({"-", "--", "null", "NULL", "None"})
FEEDBACK_INFNO = "3103"
MAX_ITEMS = 500  # services.contracts.event.Event.items

Short = Ident


def _as_list(value: Any) -> Any:
    """Several HIS clients send one object where the specification has a list: a list of one."""
    return [value] if isinstance(value, dict) else value


def _blank_amount(value: Any) -> Any:
    return None if isinstance(value, str) and value.strip() in BLANK_AMOUNTS else value


Amount = Annotated[Number | None, BeforeValidator(_blank_amount)]


# Chinese names of the fields an err_msg may name (the interface specification's 数据项名称).
ZH_NAMES = {
    "infno": "交易编号", "msgid": "发送方报文ID", "inf_time": "交易时间", "fixmedins_code": "定点医药机构编号",
    "input": "交易输入", "data": "输入数据", "task_id": "任务ID", "trig_scen": "触发场景",
    "rule_ids": "规则ID集合", "patient_dtos": "参保人信息集合", "patn_id": "参保人标识", "gend": "性别",
    "brdy": "出生日期", "poolarea": "统筹区编码", "curr_mdtrt_id": "当前就诊标识",
    "fsi_encounter_dtos": "就诊信息集合", "mdtrt_id": "就诊ID", "medins_id": "医疗机构编号",
    "adm_date": "入院日期", "dscg_date": "出院日期", "med_mdtrt_type": "就诊类型", "med_type": "医疗类别",
    "fsi_diagnose_dtos": "诊断信息集合", "dise_codg": "诊断代码", "inout_dise_type": "出入院诊断类别",
    "fsi_order_dtos": "处方(医嘱)信息集合", "rx_id": "处方(医嘱)标识", "hilist_code": "医保目录编码",
    "hilist_type": "目录类别", "chrg_type": "收费类别", "cnt": "数量", "pric": "单价", "sumamt": "明细项目费用总额",
    "drord_begn_date": "医嘱开始时间", "drord_stop_date": "医嘱停止时间", "fsi_operation_dtos": "手术操作集合",
    "warn_type": "反馈类型", "warns": "处理数据集合", "warn_rslt_id": "违规结果ID", "dspo_way": "处理方式",
    "dspo_way_rea": "处理原因", "body": "请求报文",
}


def describe(field: str, message: str) -> str:
    """``<path>: <Chinese> (<English>)`` for an err_msg: the field by path and by its Chinese name."""
    leaf = re.sub(r"\[\d+\]$", "", field).rsplit(".", 1)[-1]
    name = ZH_NAMES.get(leaf)
    if message == "required field is missing":
        zh = f"缺少必填字段「{name}」" if name else "缺少必填字段"
    elif leaf == "body" and "JSON" in message:
        zh = "请求报文不是合法的 JSON"
    else:
        zh = f"「{name}」取值无效" if name else "取值无效"
    return f"{field}: {zh} ({message})"


# =====================================================================================
# Requests
# =====================================================================================
class Envelope(Lenient):
    """The national transaction envelope (every field but ``input``)."""

    infno: Code = Field(description="交易编号: 3101 事前分析, 3102 事中分析, 3103 反馈")
    msgid: Short | None = Field(default=None, description="发送方报文 ID (the task id when task_id is absent)")
    mdtrtarea_admvs: Code | None = Field(default=None, description="就医地医保区划")
    insuplc_admdvs: Code | None = Field(default=None, description="参保地医保区划")
    recer_sys_code: str | None = Field(default=None, description="接收方系统代码")
    infver: str | None = Field(default=None, description="接口版本号")
    opter: str | None = Field(default=None, description="经办人")
    opter_name: str | None = Field(default=None, description="经办人姓名")
    opter_type: Code | None = Field(default=None, description="经办人类别")
    inf_time: Timestamp = Field(description="交易时间: the current event's time")
    fixmedins_code: Short = Field(description="定点医药机构编号: must be the API key's institution")
    fixmedins_name: str | None = Field(default=None, description="定点医药机构名称")
    sign_no: str | None = Field(default=None, description="交易签到流水号")


class DiagnoseDto(Lenient):
    """``fsi_diagnose_dtos[]``."""

    dise_id: Short | None = None
    inout_dise_type: Code | None = Field(default=None, description="1 入院诊断, 2 出院诊断")
    maindise_flag: Code | None = Field(default=None, description="1 主诊断")
    dias_srt_no: Amount = Field(default=None, description="诊断排序号")
    dise_codg: CodeMax = Field(description="诊断代码 (ICD-10 医保版)")
    dise_name: str | None = None
    dise_date: Timestamp | None = None


class OrderDto(Lenient):
    """``fsi_order_dtos[]``: one order / charge line."""

    rx_id: Short | None = Field(default=None, description="处方(医嘱)标识: becomes the native line_id")
    rxno: str | None = None
    grpno: str | None = None
    long_drord_flag: Code | None = None
    hilist_type: Code | None = Field(default=None, description="101 西药中成药, 102 中药饮片, 201 医疗服务, "
                                     "301 医用耗材 (else inferred from chrg_type)")
    chrg_type: Code | None = Field(default=None, description="收费项目类别: 08 材料, 09 西药, 10 中药饮片, 11 中成药 …")
    drord_bhvr: Code | None = Field(default=None, description="1 出院带药")
    hilist_code: CodeMax = Field(description="医保目录编码: the native item code")
    hilist_name: str | None = None
    hilist_dosform: str | None = None
    hilist_lv: Code | None = None
    hilist_pric: Amount = None
    hosplist_code: str | None = None
    hosplist_name: str | None = None
    cnt: Number = Field(description="数量 → quantity; lines with cnt ≤ 0 (returns, refunds) are not evaluated: a "
                        "code refunded in full becomes a native cancellation that takes it out of the history")
    pric: Amount = Field(default=None, description="单价 → unit_price")
    sumamt: Amount = Field(default=None, description="明细项目费用总额 → amount")
    ownpay_amt: Amount = None
    selfpay_amt: Amount = None
    spec: str | None = None
    spec_unt: str | None = None
    drord_begn_date: Timestamp | None = Field(default=None, description="医嘱开始时间 → started_at")
    drord_stop_date: Timestamp | None = Field(default=None, description="医嘱停止时间: days_supply = stop − begin "
                                              "in calendar days")
    drord_dept_codg: str | None = None
    drord_dept_name: str | None = None
    drord_dr_codg: str | None = Field(default=None, description="开医嘱医师代码 → items[].doctor_id (its 医保医师 "
                                      "payment qualification is checked on the line's date: R43)")
    bilg_dr_codg: str | None = Field(default=None, description="开单医师代码 (the 2204 fee-detail field): "
                                     "items[].doctor_id when drord_dr_codg is absent")
    drord_dr_name: str | None = None
    drord_dr_profttl: str | None = None
    curr_drord_flag: Code | None = Field(default=None, description="1 本次处方/医嘱: when any order of the current "
                                         "visit carries the flag, only flagged orders are evaluated")


class OperationDto(Lenient):
    """``fsi_operation_dtos[]`` (accepted; not evaluated yet)."""

    setl_list_oprn_id: str | None = None
    oprn_code: str | None = None
    oprn_name: str | None = None
    main_oprn_flag: Code | None = None
    oprn_date: Timestamp | None = None
    anst_way: str | None = None
    oper_dr_name: str | None = None
    oper_dr_code: str | None = None
    anst_dr_name: str | None = None
    anst_dr_code: str | None = None


class EncounterDto(Lenient):
    """``fsi_encounter_dtos[]``: the current visit and, optionally, earlier ones."""

    mdtrt_id: Short = Field(description="就诊 ID")
    medins_id: Short | None = Field(default=None, description="医疗机构编号 (default: fixmedins_code)")
    medins_name: str | None = None
    medins_admdvs: Code | None = Field(default=None, description="医疗机构医保区划 → institution.region")
    medins_type: Code | None = None
    medins_lv: Code | None = Field(default=None, description="医疗机构等级 → institution.level where mappable")
    wardarea_codg: str | None = None
    wardno: str | None = None
    bedno: str | None = None
    adm_date: Timestamp | None = Field(default=None, description="入院/就诊日期; required for earlier encounters")
    dscg_date: Timestamp | None = Field(default=None, description="出院日期")
    dscg_main_dise_codg: CodeMax | None = Field(default=None, description="出院主诊断代码")
    dscg_main_dise_name: str | None = None
    fsi_diagnose_dtos: Annotated[list[DiagnoseDto], BeforeValidator(_as_list)] = Field(default_factory=list,
                                                                                         max_length=200)
    dr_codg: CodeMax | None = Field(default=None, description="医师代码 → encounter.doctor_id")
    adm_dept_codg: CodeMax | None = Field(default=None, description="入院科室 → encounter.department")
    adm_dept_name: str | None = None
    dscg_dept_codg: CodeMax | None = None
    dscg_dept_name: str | None = None
    med_mdtrt_type: Code | None = Field(default=None, description="1 门诊, 2 住院, 3 购药")
    med_type: CodeMax | None = Field(default=None, description="医疗类别 (11, 14, 21 …) → encounter.med_type")
    fsi_order_dtos: Annotated[list[OrderDto], BeforeValidator(_as_list)] = Field(default_factory=list,
                                                                                   max_length=5000)
    matn_stas: Code | None = None
    medfee_sumamt: Amount = None
    ownpay_amt: Amount = None
    selfpay_amt: Amount = None
    acct_payamt: Amount = None
    ma_amt: Amount = None
    hifp_payamt: Amount = None
    setl_totlnum: Amount = None
    insutype: CodeMax | None = Field(default=None, description="险种类型 → patient.insurance_type")
    reim_flag: Code | None = None
    out_setl_flag: Code | None = None
    fsi_operation_dtos: Annotated[list[OperationDto], BeforeValidator(_as_list)] = Field(default_factory=list,
                                                                                           max_length=200)


class PatientDto(Lenient):
    """``patient_dtos[]``: one patient, the current visit and earlier encounters."""

    patn_id: Short = Field(description="参保人标识 → patient.id (the partition key)")
    patn_name: str | None = Field(default=None, description="accepted, never stored")
    gend: Code = Field(description="GB/T 2261.1: 1 男, 2 女, 9 未说明")
    brdy: Day = Field(description="出生日期 yyyy-MM-dd")
    poolarea: Code | None = Field(default=None, description="统筹区 → patient.region")
    curr_mdtrt_id: Short | None = Field(default=None, description="the mdtrt_id of the current visit (may be "
                                        "left out when fsi_encounter_dtos holds one encounter)")
    fsi_encounter_dtos: Annotated[list[EncounterDto], BeforeValidator(_as_list)] = Field(
        min_length=1, max_length=100, description="就诊信息集合 (one object is read as a list of one)")
    fsi_his_data_dto: Any | None = Field(default=None, description="accepted, not evaluated")


class AnalysisData(Lenient):
    """``input.data`` of 3101/3102."""

    syscode: str | None = Field(default=None, description="调用方系统标识")
    task_id: Short | None = Field(default=None, description="任务 ID: echoed in every result; when absent, msgid "
                                  "is used, else a digest of the patients and their curr_mdtrt_id")
    trig_scen: Code = Field(description="触发场景 1–10, several comma-separated (the first that fits the "
                            "visit is used)")
    rule_ids: list[Code] | Code | None = Field(default=None, description="规则 ID 列表: R01… or GZ… codes filter "
                                               "the results; other ids are ignored")
    patient_dtos: Annotated[list[PatientDto], BeforeValidator(_as_list)] = Field(
        min_length=1, max_length=100, description="参保人信息集合 (one object is read as a list of one)")


class AnalysisInput(Lenient):
    data: AnalysisData


class NhsaAnalysisRequest(Envelope):
    """3101 明细审核事前分析服务 / 3102 明细审核事中分析服务."""

    input: AnalysisInput


class WarnDto(Lenient):
    """``warns[]`` of 3103: what the doctor did with one result."""

    # validate_default: the reason check runs when dspo_way_rea is absent too
    model_config = ConfigDict(validate_default=True)

    warn_rslt_id: Short = Field(description="违规结果 ID = the jr_id of a 3101/3102 result")
    dspo_way: Code = Field(description="处理方式: 1 继续执行 (overridden), 2 返回修改 (accepted)")
    dspo_way_rea: Annotated[str, Field(max_length=REASON_MAX)] | None = Field(
        default=None, description="处理原因, required when dspo_way is 1 (≤ 500 characters)")

    @field_validator("dspo_way")
    @classmethod
    def _way(cls, value: str) -> str:
        if value not in ("1", "2"):
            raise ValueError("dspo_way must be 1 (继续执行) or 2 (返回修改)")
        return value

    @field_validator("dspo_way_rea")
    @classmethod
    def _reason(cls, value: str | None, info: Any) -> str | None:
        if info.data.get("dspo_way") == "1" and not value:
            raise ValueError("dspo_way_rea is required when dspo_way is 1 (继续执行)")
        return value


class FeedbackData(Lenient):
    """``input.data`` of 3103."""

    warn_type: Code = Field(description="1 事前, 2 事中")
    warns: Annotated[list[WarnDto], BeforeValidator(_as_list)] = Field(min_length=1, max_length=500)

    @field_validator("warn_type")
    @classmethod
    def _type(cls, value: str) -> str:
        if value not in ("1", "2"):
            raise ValueError("warn_type must be 1 (事前) or 2 (事中)")
        return value


class FeedbackInput(Lenient):
    data: FeedbackData


class NhsaFeedbackRequest(Envelope):
    """3103 事前事中服务反馈服务."""

    input: FeedbackInput


# =====================================================================================
# Responses
# =====================================================================================
class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JudgeResultDetail(_Out):
    jrd_id: str = Field(description="<jr_id>.<n>")
    patn_id: str
    mdtrt_id: str
    rx_id: str | None = Field(description="the order's rx_id as sent (its line id when none was sent)")
    vola_item_type: str | None = Field(description="hilist_type of the order")
    vola_amt: float | None = Field(description="amount of the order line")


class NhsaResult(_Out):
    jr_id: str = Field(description="the alert id <decision_id>.<rule_id>.<n>: send it back as 3103 warn_rslt_id")
    rule_id: str
    rule_name: str
    vola_cont: str = Field(description="text shown to the doctor (zh)")
    patn_id: str
    mdtrt_id: str
    judge_result_detail_dtos: list[JudgeResultDetail]
    vola_amt: float = Field(description="amount at stake")
    vola_amt_stas: str = Field(description="1 an amount is at stake, 0 none")
    sev_deg: str = Field(description="1 明确违规 (definite), 2 可疑 (suspicious)")
    vola_evid: str = Field(description="evidence: earlier events and KB rows, then the policy basis")
    vola_bhvr_type: str = Field(description="the 两库 rule code (GZ…) of the behaviour")
    task_id: str
    # extensions (HIS clients ignore unknown fields)
    sev_deg_name: str = Field(description="extension: 明确违规 | 可疑")
    rule_warn_lv: str = Field(description="extension: reminder level 1 critical, 2 warning, 3 info")
    rule_version: str = Field(description="extension")
    vola_cont_en: str = Field(description="extension: the English message")


class AnalysisStatus(_Out):
    """Extension: how each patient's analysis went."""

    patn_id: str
    mdtrt_id: str
    event_id: str
    decision_id: str
    engine_status: Literal["evaluated", "timeout", "unavailable"]
    replayed: bool
    history_events: int = Field(description="events from earlier encounters written before the current one "
                                "(an earlier stay is two: admission and settlement)")
    detail: str | None = None
    rulebase_revision: str | None = Field(None, description="the rule-base revision that decided (null: not "
                                          "decided now — timeout, unavailable, or a replay)")


class AnalysisOutput(_Out):
    result: list[NhsaResult]
    task_id: str
    trig_scen: str
    reqt_time: str
    rsp_time: str
    ana_dura: int = Field(description="analysis duration in ms")
    engine_status: Literal["evaluated", "timeout", "unavailable"] = Field(
        description="extension: evaluated only when every patient was evaluated")
    analyses: list[AnalysisStatus] = Field(description="extension: one per patient_dtos entry")


class FeedbackAck(_Out):
    warn_rslt_id: str
    rule_id: str
    outcome: Outcome


class FeedbackOutput(_Out):
    warns: list[FeedbackAck]


class _Reply(_Out):
    infcode: int = Field(description="0 success, -1 failure (err_msg says why)")
    inf_refmsgid: str = Field(description="PreSettle's id of this reply")
    refmsg_time: str = Field(description="time the request was received")
    respond_time: str = Field(description="time of this reply")
    err_msg: str | None = None
    warn_msg: str | None = None


class NhsaAnalysisResponse(_Reply):
    """3101/3102 reply. infcode -1 with an output: some patient was not evaluated (timeout/unavailable)."""

    output: AnalysisOutput | None


class NhsaFeedbackResponse(_Reply):
    """3103 reply."""

    output: FeedbackOutput | None


class NhsaErrorResponse(_Reply):
    """Any failure before analysis: infcode -1, err_msg naming the field at fault."""

    infcode: Literal[-1] = -1
    output: None = None


# =====================================================================================
# Mapping: request → events
# =====================================================================================
@dataclass(frozen=True)
class LineRef:
    """What a native line id stands for in the vendor's request."""

    rx_id: str | None
    hilist_type: str | None
    amount: float | None


@dataclass(frozen=True)
class PatientPlan:
    index: int
    patn_id: str          # as sent
    mdtrt_id: str         # current visit, as sent
    history: list[Event]  # oldest first; written before ``current``
    current: Event
    lines: dict[str, LineRef] = field(default_factory=dict)

    @property
    def key(self) -> bytes:
        return self.current.patient.id.encode()


INPATIENT_SCENES = frozenset({3, 4, 5, 8, 9})
FITS = {"outpatient": (1, 2, 6, 7), "pharmacy": (10, 2, 6, 7), "inpatient": (3, 4, 5, 8, 9)}
GENDER = {"1": "M", "2": "F", "男": "M", "女": "F", "M": "M", "F": "F"}
HOSP_LV = {f"{n:02d}": lv for n, lv in ((1, 3), (2, 3), (3, 3), (4, 3), (5, 2), (6, 2), (7, 2),
                                        (8, 1), (9, 1), (10, 1))}


def parse_scenes(raw: str, where: str) -> list[int]:
    scenes = []
    for part in re.split(r"[,，;\s]+", raw.strip()):
        if not part:
            continue
        if not part.isdigit() or not 1 <= int(part) <= 10:
            raise MappingError(where, f"{part!r} is not a trigger scene 1–10")
        scenes.append(int(part))
    if not scenes:
        raise MappingError(where, "no trigger scene given")
    return scenes


def gender(gend: str) -> str:
    """GB/T 2261.1: 1 male, 2 female; 0/9/anything else unknown."""
    return GENDER.get(gend.strip(), "U")


def institution_level(medins_lv: str | None) -> int | None:
    """医疗机构等级 → 1/2/3 where the value says it: hospital grades 01–10 (三级特等 … 一级丙等),
    the short codes 1 三级 / 2 二级 / 3 一级, or text naming 三级/二级/一级; else None."""
    if not medins_lv:
        return None
    value = medins_lv.strip()
    if value in HOSP_LV:
        return HOSP_LV[value]
    if value in ("1", "2", "3"):
        return 4 - int(value)
    for text, lv in (("三级", 3), ("二级", 2), ("一级", 1)):
        if text in value:
            return lv
    return None


def item_kind(order: OrderDto, where: str) -> str:
    t = order.hilist_type
    if t:
        if t == "102":
            return "herb"
        if t.startswith("1"):
            return "drug"
        if t.startswith("2"):
            return "service"
        if t.startswith("3"):
            return "consumable"
        raise MappingError(f"{where}.hilist_type", f"{t!r} is not 101, 102, 201 or 301")
    c = order.chrg_type
    if c:
        return {"09": "drug", "11": "drug", "10": "herb", "08": "consumable"}.get(c.zfill(2), "service")
    raise MappingError(f"{where}.hilist_type", "required field is missing (or send chrg_type)")


def days_supply(order: OrderDto) -> int | None:
    begin, stop = order.drord_begn_date, order.drord_stop_date
    if begin is None or stop is None:
        return None
    days = (stop.date() - begin.date()).days
    return min(days, 3650) if days > 0 else None


def encounter_type(enc: EncounterDto, scenes: list[int] | None) -> str:
    t = enc.med_mdtrt_type
    if t == "1":
        return "outpatient"
    if t == "2":
        return "inpatient"
    if t == "3":
        return "pharmacy"
    if enc.med_type:
        if enc.med_type.startswith("2"):
            return "inpatient"
        if enc.med_type.startswith("41"):
            return "pharmacy"
    if scenes:
        first = scenes[0]
        return "inpatient" if first in INPATIENT_SCENES else "pharmacy" if first == 10 else "outpatient"
    return "inpatient" if enc.dscg_date is not None else "outpatient"


def diagnoses(enc: EncounterDto, stage: Literal["admission", "discharge", "any"]) -> list[dict[str, Any]]:
    dtos = list(enc.fsi_diagnose_dtos)
    if stage != "any":
        skip = "2" if stage == "admission" else "1"
        staged = [d for d in dtos if d.inout_dise_type != skip]
        dtos = staged or dtos
    dtos.sort(key=lambda d: (d.maindise_flag != "1", d.dias_srt_no if d.dias_srt_no is not None else 1e9))
    out: dict[str, dict[str, Any]] = {}
    if stage == "discharge" and enc.dscg_main_dise_codg:
        out[enc.dscg_main_dise_codg] = {"code": enc.dscg_main_dise_codg, "main": True,
                                        "name": (enc.dscg_main_dise_name or None) and enc.dscg_main_dise_name[:200]}
    for d in dtos:
        if d.dise_codg in out:
            continue
        out[d.dise_codg] = {"code": d.dise_codg, "name": (d.dise_name or None) and d.dise_name[:200],
                            "main": d.maindise_flag == "1" and not any(x["main"] for x in out.values())}
    dx = list(out.values())[:50]
    if dx and not any(x["main"] for x in dx):
        dx[0]["main"] = True
    return dx


def items(
    orders: list[tuple[int, OrderDto]], where: str, limit: int | None
) -> tuple[list[dict[str, Any]], dict[str, LineRef]]:
    """Native items from orders ``(index in fsi_order_dtos, order)``; returns (items, line refs)."""
    out: list[dict[str, Any]] = []
    refs: dict[str, LineRef] = {}
    taken_back = refunded(orders)
    for i, order in orders:
        at = f"{where}.fsi_order_dtos[{i}]"
        kind = item_kind(order, at)
        if order.cnt <= 0 or order.hilist_code in taken_back:
            continue  # a return / refund line, or an order refunded in full (see cancellation_event)
        if order.cnt > 1_000_000:
            raise MappingError(f"{at}.cnt", "must be at most 1000000")
        line_id = safe_id(order.rx_id, "rx-") if order.rx_id else f"L{i + 1}"
        base, n = line_id, 1
        while line_id in refs:
            n += 1
            line_id = f"{base[:58]}~{n}"
        price = order.pric if order.pric is not None and order.pric >= 0 else None
        amount = order.sumamt if order.sumamt is not None and order.sumamt >= 0 else None
        item: dict[str, Any] = {
            "line_id": line_id, "code": order.hilist_code, "kind": kind, "quantity": order.cnt,
            "name": order.hilist_name[:200] if order.hilist_name else None,
            "unit_price": price, "amount": amount, "days_supply": days_supply(order),
            "started_at": order.drord_begn_date.isoformat() if order.drord_begn_date else None,
            "take_home": order.drord_bhvr == "1",
        }
        doctor = order.drord_dr_codg or order.bilg_dr_codg
        if doctor and len(doctor) <= 32:
            item["doctor_id"] = doctor
        out.append(item)
        refs[line_id] = LineRef(order.rx_id, order.hilist_type,
                                amount if amount is not None else (round(price * order.cnt, 2) if price is not None
                                                                   else None))
        if limit is not None and len(out) >= limit:
            break
    if limit is None and len(out) > MAX_ITEMS:
        raise MappingError(f"{where}.fsi_order_dtos", f"at most {MAX_ITEMS} orders of the current visit "
                           "can be evaluated in one request")
    return out, refs


def refunded(orders: list[tuple[int, OrderDto]]) -> dict[str, tuple[str, float]]:
    """Codes whose refund lines (``cnt`` ≤ 0: 退药 / 退费) take back at least what the encounter's
    orders of the code hold: ``{code: (kind, quantity taken back)}``. A partial refund leaves the
    order in place (the rest is still supplied)."""
    back: dict[str, float] = {}
    given: dict[str, float] = {}
    kinds: dict[str, str] = {}
    for i, order in orders:
        if order.cnt <= 0:
            back[order.hilist_code] = back.get(order.hilist_code, 0.0) + abs(order.cnt)
            kinds[order.hilist_code] = item_kind(order, f"fsi_order_dtos[{i}]")
        else:
            given[order.hilist_code] = given.get(order.hilist_code, 0.0) + order.cnt
    return {code: (kinds[code], qty) for code, qty in back.items() if qty >= given.get(code, 0.0)}


def cancellation_event(base: dict[str, Any], orders: list[tuple[int, OrderDto]], where: str) -> Event | None:
    """The native cancellation for an encounter's refunds: its refunded codes leave the patient's
    history (supplies, period counters) instead of being dropped silently. ``base`` is the
    encounter's event body (scene, time, institution, patient, encounter); None without refunds."""
    back = refunded(orders)
    if not back:
        return None
    its = [{"line_id": f"R{n + 1}", "code": code, "kind": kind, "quantity": qty if qty > 0 else 1.0}
           for n, (code, (kind, qty)) in enumerate(sorted(back.items()))]
    body = {**base, "event_type": "cancellation", "diagnoses": [], "items": its}
    return _event(_with_id(body, "nhsa-c"), where)


def _event(body: dict[str, Any], where: str) -> Event:
    try:
        return Event.model_validate(body)
    except ValidationError as exc:  # a mapped value the native model refuses
        field_, message = first_error([dict(e) for e in exc.errors()])
        raise MappingError(where, f"maps to an invalid native event ({field_}: {message})") from None


def _with_id(body: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Give a mapped event a deterministic id: a digest of its facts (time to the day)."""
    facts = {k: v for k, v in body.items() if k not in ("event_id", "occurred_at")}
    facts["day"] = str(body["occurred_at"])[:10]
    body["event_id"] = f"{prefix}-{digest(facts, 8)}"
    return body


def _institution(inst_id: str, enc: EncounterDto, env: Envelope) -> dict[str, Any]:
    return {"id": safe_id(inst_id, "i-"), "level": institution_level(enc.medins_lv),
            "region": enc.medins_admdvs or env.mdtrtarea_admvs}


def _patient(p: PatientDto, env: Envelope, insutype: str | None) -> dict[str, Any]:
    return {"id": safe_id(p.patn_id, "p-"), "gender": gender(p.gend), "birth_date": p.brdy.isoformat(),
            "insurance_type": insutype, "region": p.poolarea or env.insuplc_admdvs}


def _encounter(enc: EncounterDto, etype: str, where: str, discharged: bool) -> dict[str, Any]:
    if discharged and enc.adm_date and enc.dscg_date and enc.dscg_date < enc.adm_date:
        raise MappingError(f"{where}.dscg_date", "is before adm_date")
    return {
        "id": safe_id(enc.mdtrt_id, "m-"), "type": etype, "med_type": enc.med_type,
        "admitted_at": enc.adm_date.isoformat() if enc.adm_date else None,
        "discharged_at": enc.dscg_date.isoformat() if discharged and enc.dscg_date else None,
        "department": (enc.dscg_dept_codg or enc.adm_dept_codg) if discharged else enc.adm_dept_codg,
        "doctor_id": enc.dr_codg,
    }


def history_events(p: PatientDto, enc: EncounterDto, env: Envelope, where: str) -> list[Event]:
    """Native events for one earlier encounter (deterministic ids; see the module docstring)."""
    etype = encounter_type(enc, None)
    inst = enc.medins_id or env.fixmedins_code
    orders = list(enumerate(enc.fsi_order_dtos))
    mid = safe_id(enc.mdtrt_id, "m-")[:32]
    base = {"institution": _institution(inst, enc, env), "patient": _patient(p, env, enc.insutype)}
    bodies = []
    if etype == "inpatient":
        if enc.adm_date is None:
            raise MappingError(f"{where}.adm_date", "required for an earlier inpatient encounter")
        bodies.append({**base, "scene": 3, "occurred_at": enc.adm_date.isoformat(),
                       "encounter": _encounter(enc, etype, where, discharged=False),
                       "diagnoses": diagnoses(enc, "admission"), "items": []})
        if enc.dscg_date is not None:
            its, _ = items(orders, where, MAX_ITEMS)
            bodies.append({**base, "scene": 8, "occurred_at": enc.dscg_date.isoformat(),
                           "encounter": _encounter(enc, etype, where, discharged=True),
                           "diagnoses": diagnoses(enc, "discharge"), "items": its})
    else:
        starts = [o.drord_begn_date for o in enc.fsi_order_dtos if o.drord_begn_date is not None]
        when = enc.adm_date or (min(starts) if starts else None) or enc.dscg_date
        if when is None:
            raise MappingError(f"{where}.adm_date", "required for an earlier encounter (or drord_begn_date "
                               "on its orders)")
        its, _ = items(orders, where, MAX_ITEMS)
        bodies.append({**base, "scene": 10 if etype == "pharmacy" else 6, "occurred_at": when.isoformat(),
                       "encounter": _encounter(enc, etype, where, discharged=True),
                       "diagnoses": diagnoses(enc, "any"), "items": its})
    events = [_event(_with_id(b, f"nhsa-h{b['scene']}-{mid}"), where) for b in bodies]
    cancel = cancellation_event({k: v for k, v in bodies[-1].items() if k != "items"}, orders, where)
    return events + [cancel] if cancel is not None else events


def current_mdtrt_id(p: PatientDto, where: str) -> str:
    """``curr_mdtrt_id``, or the only encounter's ``mdtrt_id`` when it is left out."""
    if p.curr_mdtrt_id:
        return p.curr_mdtrt_id
    if len(p.fsi_encounter_dtos) == 1:
        return p.fsi_encounter_dtos[0].mdtrt_id
    raise MappingError(f"{where}.curr_mdtrt_id", "required field is missing")


def task_key(req: NhsaAnalysisRequest) -> str:
    """The request's task id, echoed as ``output.task_id`` and in every result: ``task_id`` when sent,
    else ``msgid``, else ``t-`` + a digest of each patient's ``patn_id`` and current ``mdtrt_id``
    (the same visit of the same patients is the same task).

    Idempotency of the analysis does not depend on it: event ids are digests of the mapped facts
    (see the module docstring), so a retry with a fresh ``msgid`` is still a retry."""
    data = req.input.data
    if data.task_id:
        return data.task_id
    if req.msgid:
        return req.msgid
    visits = [[p.patn_id, current_mdtrt_id(p, f"input.data.patient_dtos[{i}]")]
              for i, p in enumerate(data.patient_dtos)]
    return f"t-{digest(visits, 10)}"


def plan_patient(req: NhsaAnalysisRequest, index: int, scenes: list[int]) -> PatientPlan:
    env, p = req, req.input.data.patient_dtos[index]
    where = f"input.data.patient_dtos[{index}]"
    curr = current_mdtrt_id(p, where)
    current: tuple[int, EncounterDto] | None = None
    earlier: list[tuple[int, EncounterDto]] = []
    seen: set[str] = set()
    for i, enc in enumerate(p.fsi_encounter_dtos):
        if enc.mdtrt_id in seen:
            raise MappingError(f"{where}.fsi_encounter_dtos[{i}].mdtrt_id", f"duplicate mdtrt_id {enc.mdtrt_id!r}")
        seen.add(enc.mdtrt_id)
        if enc.mdtrt_id == curr:
            current = (i, enc)
        else:
            earlier.append((i, enc))
    if current is None:
        raise MappingError(f"{where}.curr_mdtrt_id", f"no fsi_encounter_dtos entry has mdtrt_id {curr!r}")
    ci, enc = current
    cwhere = f"{where}.fsi_encounter_dtos[{ci}]"
    etype = encounter_type(enc, scenes)
    scene = next((s for s in scenes if s in FITS[etype]), scenes[0])
    flagged = any(o.curr_drord_flag is not None for o in enc.fsi_order_dtos)
    orders = [(i, o) for i, o in enumerate(enc.fsi_order_dtos) if not flagged or o.curr_drord_flag == "1"]
    its, refs = items(orders, cwhere, None)
    discharged = scene in (8, 9) or etype != "inpatient"
    stage: Literal["admission", "discharge", "any"] = (
        "discharge" if scene in (8, 9) else "admission" if etype == "inpatient" else "any")
    body = {
        "scene": scene, "occurred_at": env.inf_time.isoformat(),
        "institution": _institution(env.fixmedins_code, enc, env),
        "patient": _patient(p, env, enc.insutype),
        "encounter": _encounter(enc, etype, cwhere, discharged=discharged),
        "diagnoses": diagnoses(enc, stage), "items": its,
    }
    current_event = _event(_with_id(body, f"nhsa-{scene}"), cwhere)
    history: list[Event] = []
    for i, old in earlier:
        history.extend(history_events(p, old, env, f"{where}.fsi_encounter_dtos[{i}]"))
    history.sort(key=lambda e: (e.occurred_at, e.scene, e.event_type == "cancellation"))
    # Refunds of the current visit's earlier orders: taken back before the current event is decided.
    cancel = cancellation_event({k: v for k, v in body.items() if k not in ("items", "event_id")}, orders, cwhere)
    if cancel is not None:
        history.append(cancel)
    return PatientPlan(index, p.patn_id, enc.mdtrt_id, history, current_event, refs)


def plan_analysis(req: NhsaAnalysisRequest) -> list[PatientPlan]:
    """One plan per patient (MappingError names the first field that cannot be mapped)."""
    scenes = parse_scenes(req.input.data.trig_scen, "input.data.trig_scen")
    return [plan_patient(req, i, scenes) for i in range(len(req.input.data.patient_dtos))]


# =====================================================================================
# Mapping: alerts → output.result[]
# =====================================================================================
SEV_DEG = {"definite": ("1", "明确违规"), "suspicious": ("2", "可疑")}
WARN_LV = {"critical": "1", "warning": "2", "info": "3"}
RULE_FILTER_RE = re.compile(r"^(R\d+|GZ\d+|ZB\d+)$")


def rule_filter(rule_ids: list[str] | str | None) -> frozenset[str]:
    """The requested ids that name our rules (R03) or 两库 codes/classes (GZ10000301…); others are ignored."""
    if rule_ids is None:
        return frozenset()
    raw = rule_ids if isinstance(rule_ids, list) else re.split(r"[,，;\s]+", rule_ids)
    return frozenset(r.strip() for r in raw if RULE_FILTER_RE.match(r.strip()))


def wanted(alert: Alert, filt: frozenset[str]) -> bool:
    if not filt:
        return True
    gz = alert.gz_code or ""
    return alert.rule_id in filt or any(gz.startswith(f) for f in filt if not f.startswith("R"))


def evidence_text(alert: Alert) -> str:
    parts = []
    for ev in alert.evidence:
        if ev.get("kind") == "kb":
            parts.append(f"知识库 {ev.get('table')} {ev.get('code')}: {ev.get('detail')}")
            continue
        bits = [str(ev[k]) for k in ("date", "institution_id") if ev.get(k)]
        if ev.get("item_name") or ev.get("item_code"):
            bits.append(f"{ev.get('item_name') or ''}({ev.get('item_code') or ''})")
        if ev.get("quantity") is not None:
            bits.append(f"×{ev['quantity']:g}" if isinstance(ev["quantity"], (int, float)) else f"×{ev['quantity']}")
        if ev.get("days_supply") is not None:
            bits.append(f"{ev['days_supply']}天量")
        if ev.get("diagnosis_code"):
            bits.append(f"诊断 {ev['diagnosis_code']} {ev.get('diagnosis_name') or ''}".rstrip())
        if ev.get("event_id"):
            bits.append(f"[{ev['event_id']}]")
        parts.append(" ".join(bits))
    text = "；".join(p for p in parts if p)
    basis = alert.policy_basis
    return f"{text}。依据：{basis}" if basis else text


def result(alert: Alert, plan: PatientPlan, task_id: str) -> dict[str, Any]:
    jr_id = alert.alert_id
    details = []
    for n, line_id in enumerate(alert.line_ids, 1):
        ref = plan.lines.get(line_id, LineRef(line_id, None, None))
        details.append({"jrd_id": f"{jr_id}.{n}", "patn_id": plan.patn_id, "mdtrt_id": plan.mdtrt_id,
                        "rx_id": ref.rx_id or line_id, "vola_item_type": ref.hilist_type, "vola_amt": ref.amount})
    sev, sev_name = SEV_DEG.get(alert.result_type or "", ("2", "可疑"))
    amount = float(alert.amount or 0.0)
    return {
        "jr_id": jr_id, "rule_id": alert.rule_id, "rule_name": alert.name_zh or alert.rule_id,
        "vola_cont": alert.message_zh or "", "patn_id": plan.patn_id, "mdtrt_id": plan.mdtrt_id,
        "judge_result_detail_dtos": details, "vola_amt": amount, "vola_amt_stas": "1" if amount > 0 else "0",
        "sev_deg": sev, "vola_evid": evidence_text(alert), "vola_bhvr_type": alert.gz_code or "",
        "task_id": task_id, "sev_deg_name": sev_name,
        "rule_warn_lv": WARN_LV.get(alert.indicator or "", "2"),
        "rule_version": alert.rule_version or "", "vola_cont_en": alert.message_en or "",
    }


def analysis_output(
    req: NhsaAnalysisRequest,
    plans: list[PatientPlan],
    decisions: list[Decision],
    received: datetime,
    answered: datetime,
) -> tuple[int, str | None, dict[str, Any]]:
    """(infcode, err_msg, output) for 3101/3102 from each plan's :class:`Decision`.

    infcode 0 only when every patient was evaluated. A timeout or an unavailable engine is
    infcode -1 with err_msg saying so — never an empty "no findings" — while ``output`` still
    carries the results of the patients that were evaluated and each patient's status.
    """
    data = req.input.data
    task_id = task_key(req)
    filt = rule_filter(data.rule_ids)
    results: list[dict[str, Any]] = []
    analyses = []
    problems = []
    for plan, d in zip(plans, decisions, strict=True):
        if d.engine_status == "evaluated":
            results.extend(result(a, plan, task_id) for a in d.alerts if wanted(a, filt))
        else:
            why = ("the analysis did not finish within the time budget; send the same request again to get "
                   "its result" if d.engine_status == "timeout" else
                   f"the analysis service is unavailable ({d.detail or 'broker unreachable'})")
            problems.append(f"patient_dtos[{plan.index}] (patn_id {plan.patn_id}): {d.engine_status}: {why}")
        analyses.append({
            "patn_id": plan.patn_id, "mdtrt_id": plan.mdtrt_id, "event_id": d.event_id,
            "decision_id": d.decision_id, "engine_status": d.engine_status, "replayed": d.replayed,
            "history_events": len(plan.history), "detail": d.detail, "rulebase_revision": d.rulebase_revision,
        })
    statuses = {a["engine_status"] for a in analyses}
    overall = "evaluated" if statuses == {"evaluated"} else "unavailable" if "unavailable" in statuses else "timeout"
    output = {
        "result": results, "task_id": task_id, "trig_scen": data.trig_scen,
        "reqt_time": received.strftime("%Y-%m-%d %H:%M:%S"), "rsp_time": answered.strftime("%Y-%m-%d %H:%M:%S"),
        "ana_dura": max(0, round((answered - received).total_seconds() * 1000)),
        "engine_status": overall, "analyses": analyses,
    }
    return (0, None, output) if not problems else (-1, "; ".join(problems), output)


# =====================================================================================
# 3103 feedback
# =====================================================================================
def feedback_records(
    req: NhsaFeedbackRequest, institution_id: str, received_at: datetime,
    known_rules: frozenset[str] | None = None,
) -> list[dict[str, Any]]:
    """One feedback record per warn (all validated first; MappingError names the warn_rslt_id at fault)."""
    out = []
    for i, warn in enumerate(req.input.data.warns):
        outcome: Outcome = "overridden" if warn.dspo_way == "1" else "accepted"
        out.append(feedback_record(
            warn.warn_rslt_id, outcome, reason=warn.dspo_way_rea, institution_id=institution_id,
            dialect="nhsa", received_at=received_at, field=f"input.data.warns[{i}].warn_rslt_id",
            reason_code=f"dspo_way:{warn.dspo_way}", source_ref=req.msgid, known_rules=known_rules,
        ))
    return out


def envelope_infno(body: Any) -> str | None:
    """The ``infno`` of a decoded body, as a string (None when absent)."""
    if not isinstance(body, dict) or body.get("infno") in (None, ""):
        return None
    value = body["infno"]
    return str(int(value)) if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value).strip()
