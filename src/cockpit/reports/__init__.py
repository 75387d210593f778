"""Reports written as PDF (fpdf2), Excel (XlsxWriter) and CSV from one description (``model``)."""
