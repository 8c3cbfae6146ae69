// zh/en with i18next: the catalogue of messages.ts, the language kept in localStorage, and
// `labelOf` for the kernel's own bilingual labels (English falls back to Chinese, as the
// kernel's labels may have only zh).
import i18n from "i18next";
import { initReactI18next, useTranslation } from "react-i18next";
import { messages } from "./messages";
import type { Label } from "./api";

const LANG_KEY = "erpos.lang";
const saved = localStorage.getItem(LANG_KEY);

void i18n.use(initReactI18next).init({
  resources: {
    zh: { translation: messages.zh },
    en: { translation: messages.en },
  },
  lng: saved === "en" ? "en" : "zh",
  fallbackLng: "zh",
  interpolation: { escapeValue: false },
});

/** Switches the language and remembers it. */
export function setLanguage(lang: "zh" | "en"): void {
  localStorage.setItem(LANG_KEY, lang);
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  void i18n.changeLanguage(lang);
}

/** The current language and a function picking a kernel label's text in it. */
export function useLabel(): { lang: "zh" | "en"; labelOf: (l: Label | null | undefined) => string } {
  const { i18n: current } = useTranslation();
  const lang = current.language === "en" ? "en" : "zh";
  const labelOf = (l: Label | null | undefined) => {
    if (!l) return "";
    return (lang === "en" ? l.en : undefined) ?? l.zh;
  };
  return { lang, labelOf };
}

export default i18n;
