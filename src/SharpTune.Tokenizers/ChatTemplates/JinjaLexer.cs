using System.Globalization;
using System.Text;

namespace SharpTune.Tokenizers.ChatTemplates;

/// <summary>A template error, located at the template's line and column (1-based).</summary>
public sealed class JinjaException : Exception
{
    public JinjaException(string message, int line, int column, Exception? inner = null)
        : base($"{message} (template line {line}, column {column})", inner)
    {
        Line = line;
        Column = column;
        Reason = message;
    }

    public int Line { get; }
    public int Column { get; }

    /// <summary>The message without its location.</summary>
    public string Reason { get; }
}

/// <summary>Raised by a template's own <c>raise_exception(...)</c> call (e.g. "roles must alternate").</summary>
public sealed class TemplateRaisedException(string message) : Exception(message);

internal enum TokenKind { Text, BlockBegin, BlockEnd, VariableBegin, VariableEnd, Name, String, Integer, Float, Operator, End }

internal readonly record struct JinjaToken(TokenKind Kind, string Value, int Offset, object? Literal = null);

/// <summary>
/// Splits a template into text and tag tokens as Jinja2 does with the environment transformers uses
/// (trim_blocks and lstrip_blocks on, a single trailing newline dropped), honouring <c>-</c>/<c>+</c> whitespace control.
/// </summary>
internal sealed class JinjaLexer
{
    private readonly string _source;
    private readonly List<JinjaToken> _tokens = [];
    private int _pos;

    private JinjaLexer(string source) => _source = source.EndsWith('\n') ? source[..^1] : source;

    public static List<JinjaToken> Tokenize(string source, out string normalized)
    {
        var lexer = new JinjaLexer(source);
        lexer.Run();
        normalized = lexer._source;
        return lexer._tokens;
    }

    public static (int Line, int Column) Locate(string source, int offset)
    {
        int line = 1, column = 1;
        for (var i = 0; i < offset && i < source.Length; i++)
        {
            if (source[i] == '\n') { line++; column = 1; }
            else column++;
        }
        return (line, column);
    }

    private JinjaException Error(string message, int offset)
    {
        var (line, column) = Locate(_source, offset);
        return new JinjaException(message, line, column);
    }

    private void Run()
    {
        var s = _source;
        while (_pos < s.Length)
        {
            var start = FindTagStart(_pos);
            var textEnd = start < 0 ? s.Length : start;
            if (start < 0)
            {
                AddText(_pos, textEnd);
                _pos = s.Length;
                break;
            }
            var kind = s[start + 1];
            var marker = start + 2 < s.Length ? s[start + 2] : '\0';
            var textStop = textEnd;
            if (marker == '-')
            {
                while (textStop > _pos && IsSpace(s[textStop - 1])) textStop--;
            }
            else if (marker != '+' && kind is '%' or '#')
            {
                // lstrip_blocks: spaces and tabs between the start of the line and a block or comment tag go.
                var w = textStop;
                while (w > _pos && s[w - 1] is ' ' or '\t') w--;
                if (w == 0 || s[w - 1] == '\n')
                    textStop = w;
            }
            AddText(_pos, textStop);
            _pos = start + 2 + (marker is '-' or '+' ? 1 : 0);
            switch (kind)
            {
                case '#':
                    LexComment(start);
                    break;
                case '%':
                    if (TryLexRaw(start))
                        break;
                    _tokens.Add(new JinjaToken(TokenKind.BlockBegin, "{%", start));
                    LexInside(TokenKind.BlockEnd, start);
                    break;
                default:
                    _tokens.Add(new JinjaToken(TokenKind.VariableBegin, "{{", start));
                    LexInside(TokenKind.VariableEnd, start);
                    break;
            }
        }
        _tokens.Add(new JinjaToken(TokenKind.End, "", s.Length));
    }

    private int FindTagStart(int from)
    {
        var s = _source;
        for (var i = s.IndexOf('{', from); i >= 0 && i + 1 < s.Length; i = s.IndexOf('{', i + 1))
            if (s[i + 1] is '{' or '%' or '#')
                return i;
        return -1;
    }

    private void AddText(int from, int to)
    {
        if (to > from)
            _tokens.Add(new JinjaToken(TokenKind.Text, _source[from..to], from));
    }

    /// <summary>After a closing tag: <c>-</c> strips all following whitespace; trim_blocks drops one newline after block and comment tags.</summary>
    private void AfterClose(char closeMarker, bool isBlockOrComment)
    {
        var s = _source;
        if (closeMarker == '-')
        {
            while (_pos < s.Length && IsSpace(s[_pos])) _pos++;
        }
        else if (closeMarker != '+' && isBlockOrComment)
        {
            if (_pos < s.Length && s[_pos] == '\n') _pos++;
            else if (_pos + 1 < s.Length && s[_pos] == '\r' && s[_pos + 1] == '\n') _pos += 2;
        }
    }

    private void LexComment(int start)
    {
        var end = _source.IndexOf("#}", _pos, StringComparison.Ordinal);
        if (end < 0)
            throw Error("unclosed comment: missing '#}'", start);
        var marker = end > _pos && _source[end - 1] is '-' or '+' ? _source[end - 1] : '\0';
        _pos = end + 2;
        AfterClose(marker, true);
    }

    /// <summary><c>{% raw %}...{% endraw %}</c>: the body is text, not template.</summary>
    private bool TryLexRaw(int start)
    {
        var s = _source;
        var i = _pos;
        while (i < s.Length && IsSpace(s[i])) i++;
        if (string.CompareOrdinal(s, i, "raw", 0, 3) != 0 || (i + 3 < s.Length && IsNameChar(s[i + 3])))
            return false;
        i += 3;
        while (i < s.Length && IsSpace(s[i])) i++;
        var marker = '\0';
        if (i < s.Length && s[i] is '-' or '+') marker = s[i++];
        if (string.CompareOrdinal(s, i, "%}", 0, 2) != 0)
            throw Error("expected '%}' after 'raw'", i);
        _pos = i + 2;
        AfterClose(marker, true);
        var bodyStart = _pos;
        for (var j = s.IndexOf("{%", _pos, StringComparison.Ordinal); j >= 0; j = s.IndexOf("{%", j + 2, StringComparison.Ordinal))
        {
            var k = j + 2;
            var strip = k < s.Length && s[k] == '-';
            if (k < s.Length && s[k] is '-' or '+') k++;
            while (k < s.Length && IsSpace(s[k])) k++;
            if (string.CompareOrdinal(s, k, "endraw", 0, 6) != 0)
                continue;
            k += 6;
            while (k < s.Length && IsSpace(s[k])) k++;
            var closeMarker = '\0';
            if (k < s.Length && s[k] is '-' or '+') closeMarker = s[k++];
            if (string.CompareOrdinal(s, k, "%}", 0, 2) != 0)
                throw Error("expected '%}' after 'endraw'", k);
            var bodyEnd = j;
            if (strip)
                while (bodyEnd > bodyStart && IsSpace(s[bodyEnd - 1])) bodyEnd--;
            AddText(bodyStart, bodyEnd);
            _pos = k + 2;
            AfterClose(closeMarker, true);
            return true;
        }
        throw Error("'raw' block without 'endraw'", start);
    }

    private void LexInside(TokenKind endKind, int tagStart)
    {
        var s = _source;
        var depth = 0;
        while (true)
        {
            while (_pos < s.Length && IsSpace(s[_pos])) _pos++;
            if (_pos >= s.Length)
                throw Error(endKind == TokenKind.BlockEnd ? "unclosed tag: missing '%}'" : "unclosed expression: missing '}}'", tagStart);
            var c = s[_pos];
            var close = endKind == TokenKind.BlockEnd ? "%}" : "}}";
            if (depth == 0)
            {
                var marker = c is '-' or '+' && string.CompareOrdinal(s, _pos + 1, close, 0, 2) == 0 ? c : '\0';
                if (marker != '\0' || string.CompareOrdinal(s, _pos, close, 0, 2) == 0)
                {
                    _tokens.Add(new JinjaToken(endKind, close, _pos));
                    _pos += marker != '\0' ? 3 : 2;
                    AfterClose(marker, endKind == TokenKind.BlockEnd);
                    return;
                }
            }
            var start = _pos;
            if (char.IsAsciiLetter(c) || c == '_')
            {
                while (_pos < s.Length && IsNameChar(s[_pos])) _pos++;
                _tokens.Add(new JinjaToken(TokenKind.Name, s[start.._pos], start));
            }
            else if (char.IsAsciiDigit(c) || (c == '.' && _pos + 1 < s.Length && char.IsAsciiDigit(s[_pos + 1]) && LastIsOperatorOrStart()))
            {
                LexNumber();
            }
            else if (c is '\'' or '"')
            {
                _tokens.Add(new JinjaToken(TokenKind.String, "string", start, LexString(c)));
            }
            else
            {
                var op = Operators.FirstOrDefault(o => string.CompareOrdinal(s, _pos, o, 0, o.Length) == 0)
                         ?? throw Error($"unexpected character '{c}'", _pos);
                if (op is "(" or "[" or "{") depth++;
                else if (op is ")" or "]" or "}") depth--;
                _pos += op.Length;
                _tokens.Add(new JinjaToken(TokenKind.Operator, op, start));
            }
        }
    }

    private bool LastIsOperatorOrStart() => _tokens.Count == 0 || _tokens[^1].Kind is not (TokenKind.Name or TokenKind.String or TokenKind.Integer or TokenKind.Float)
                                            && _tokens[^1].Value is not (")" or "]" or "}");

    private static readonly string[] Operators =
        ["**", "//", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "=", "(", ")", "[", "]", "{", "}", ",", ".", ":", "|"];

    private void LexNumber()
    {
        var s = _source;
        var start = _pos;
        var isFloat = false;
        while (_pos < s.Length && (char.IsAsciiDigit(s[_pos]) || s[_pos] == '_')) _pos++;
        if (_pos + 1 < s.Length && s[_pos] == '.' && char.IsAsciiDigit(s[_pos + 1]))
        {
            isFloat = true;
            _pos++;
            while (_pos < s.Length && (char.IsAsciiDigit(s[_pos]) || s[_pos] == '_')) _pos++;
        }
        if (_pos < s.Length && s[_pos] is 'e' or 'E')
        {
            var k = _pos + 1;
            if (k < s.Length && s[k] is '+' or '-') k++;
            if (k < s.Length && char.IsAsciiDigit(s[k]))
            {
                isFloat = true;
                _pos = k;
                while (_pos < s.Length && char.IsAsciiDigit(s[_pos])) _pos++;
            }
        }
        var text = s[start.._pos].Replace("_", "");
        if (isFloat)
            _tokens.Add(new JinjaToken(TokenKind.Float, text, start, double.Parse(text, CultureInfo.InvariantCulture)));
        else
            _tokens.Add(new JinjaToken(TokenKind.Integer, text, start,
                long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value) ? value
                    : throw Error($"integer literal {text} is too large", start)));
    }

    /// <summary>A string literal with Python's escapes (Jinja decodes them with unicode-escape; unknown escapes stay).</summary>
    private string LexString(char quote)
    {
        var s = _source;
        var start = _pos++;
        var sb = new StringBuilder();
        while (true)
        {
            if (_pos >= s.Length)
                throw Error("unterminated string literal", start);
            var c = s[_pos++];
            if (c == quote)
                return sb.ToString();
            if (c != '\\')
            {
                sb.Append(c);
                continue;
            }
            if (_pos >= s.Length)
                throw Error("unterminated string literal", start);
            var e = s[_pos++];
            switch (e)
            {
                case 'n': sb.Append('\n'); break;
                case 't': sb.Append('\t'); break;
                case 'r': sb.Append('\r'); break;
                case 'b': sb.Append('\b'); break;
                case 'f': sb.Append('\f'); break;
                case 'v': sb.Append('\v'); break;
                case 'a': sb.Append('\a'); break;
                case '0' or '1' or '2' or '3' or '4' or '5' or '6' or '7':
                {
                    var value = e - '0';
                    for (var n = 0; n < 2 && _pos < s.Length && s[_pos] is >= '0' and <= '7'; n++)
                        value = value * 8 + (s[_pos++] - '0');
                    sb.Append((char)value);
                    break;
                }
                case '\\' or '\'' or '"': sb.Append(e); break;
                case '\n': break;
                case 'x' or 'u' or 'U':
                {
                    var length = e == 'x' ? 2 : e == 'u' ? 4 : 8;
                    if (_pos + length > s.Length || !int.TryParse(s.AsSpan(_pos, length), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var code))
                        throw Error($"invalid \\{e} escape in string literal", _pos - 2);
                    sb.Append(char.ConvertFromUtf32(code));
                    _pos += length;
                    break;
                }
                default: sb.Append('\\').Append(e); break;
            }
        }
    }

    private static bool IsNameChar(char c) => char.IsAsciiLetterOrDigit(c) || c == '_';

    /// <summary>Python's str.isspace for the characters templates meet (Jinja's \s).</summary>
    internal static bool IsSpace(char c) => c is ' ' or '\t' or '\n' or '\r' or '\f' or '\v' or (>= '\x1c' and <= '\x1f') || (c > 127 && char.IsWhiteSpace(c));
}
