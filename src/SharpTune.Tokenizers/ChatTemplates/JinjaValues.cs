using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace SharpTune.Tokenizers.ChatTemplates;

/// <summary>Jinja's undefined value: prints as nothing, is falsy, iterates as empty; using it further is an error.</summary>
internal sealed class Undefined
{
    public static readonly Undefined Instance = new();
    private Undefined() { }
}

/// <summary>A tuple: a list that cannot change and prints with parentheses.</summary>
internal sealed class JinjaTuple(List<object?> items) : List<object?>(items);

/// <summary>The object <c>namespace(...)</c> makes: the one thing a loop body can assign into for use after the loop.</summary>
internal sealed class JinjaNamespace
{
    public OrderedDictionary<string, object?> Values { get; } = new(StringComparer.Ordinal);
}

/// <summary>A callable: a global function, a bound string/dict method, or a macro.</summary>
internal delegate object? JinjaFunction(List<object?> args, List<(string Name, object? Value)> kwargs);

internal sealed record JinjaCallable(string Name, JinjaFunction Invoke);

/// <summary>Python-style conversions, printing and JSON of the values templates handle (long, double, bool, string, null,
/// <see cref="Undefined"/>, lists, string-keyed ordered dicts, namespaces, callables).</summary>
internal static class JinjaValues
{
    public static object? FromJson(JsonNode? node) => node switch
    {
        null => null,
        JsonObject o => FromJsonObject(o),
        JsonArray a => a.Select(FromJson).ToList(),
        JsonValue v => FromJsonValue(v),
        _ => throw new InvalidDataException($"unsupported JSON node {node}"),
    };

    private static OrderedDictionary<string, object?> FromJsonObject(JsonObject o)
    {
        var dict = new OrderedDictionary<string, object?>(StringComparer.Ordinal);
        foreach (var (key, value) in o)
            dict[key] = FromJson(value);
        return dict;
    }

    private static object? FromJsonValue(JsonValue v)
    {
        if (v.TryGetValue<string>(out var s)) return s;
        if (v.TryGetValue<bool>(out var b)) return b;
        if (v.TryGetValue<long>(out var l)) return l;
        if (v.TryGetValue<int>(out var i)) return (long)i;
        if (v.TryGetValue<double>(out var d))
        {
            // A JSON number written without a fraction or exponent is a Python int.
            if (v.TryGetValue<JsonElement>(out var element) && element.ValueKind == JsonValueKind.Number
                && element.GetRawText().IndexOfAny(['.', 'e', 'E']) < 0 && element.TryGetInt64(out var whole))
                return whole;
            return d;
        }
        if (v.TryGetValue<JsonElement>(out var e))
            return e.ValueKind switch
            {
                JsonValueKind.String => e.GetString(),
                JsonValueKind.True => true,
                JsonValueKind.False => false,
                JsonValueKind.Null => null,
                JsonValueKind.Number => e.TryGetInt64(out var n) ? n : e.GetDouble(),
                _ => FromJson(JsonNode.Parse(e.GetRawText())),
            };
        throw new InvalidDataException($"unsupported JSON value {v.ToJsonString()}");
    }

    public static bool IsTruthy(object? value) => value switch
    {
        null or Undefined => false,
        bool b => b,
        long l => l != 0,
        double d => d != 0,
        string s => s.Length > 0,
        List<object?> l => l.Count > 0,
        OrderedDictionary<string, object?> d => d.Count > 0,
        _ => true,
    };

    public static string TypeName(object? value) => value switch
    {
        null => "NoneType",
        Undefined => "Undefined",
        bool => "bool",
        long => "int",
        double => "float",
        string => "str",
        JinjaTuple => "tuple",
        List<object?> => "list",
        OrderedDictionary<string, object?> => "dict",
        JinjaNamespace => "Namespace",
        JinjaCallable => "function",
        _ => value.GetType().Name,
    };

    /// <summary>Python's str(): what <c>{{ value }}</c> prints.</summary>
    public static string ToStr(object? value) => value switch
    {
        Undefined => "",
        string s => s,
        _ => Repr(value),
    };

    /// <summary>Python's repr(), used for values inside printed lists and dicts.</summary>
    public static string Repr(object? value)
    {
        var sb = new StringBuilder();
        AppendRepr(sb, value);
        return sb.ToString();
    }

    private static void AppendRepr(StringBuilder sb, object? value)
    {
        switch (value)
        {
            case null: sb.Append("None"); break;
            case Undefined: break;
            case bool b: sb.Append(b ? "True" : "False"); break;
            case long l: sb.Append(l.ToString(CultureInfo.InvariantCulture)); break;
            case double d: sb.Append(FormatFloat(d)); break;
            case string s: AppendStringRepr(sb, s); break;
            case JinjaTuple t:
                sb.Append('(');
                for (var i = 0; i < t.Count; i++)
                {
                    if (i > 0) sb.Append(", ");
                    AppendRepr(sb, t[i]);
                }
                sb.Append(t.Count == 1 ? ",)" : ")");
                break;
            case List<object?> list:
                sb.Append('[');
                for (var i = 0; i < list.Count; i++)
                {
                    if (i > 0) sb.Append(", ");
                    AppendRepr(sb, list[i]);
                }
                sb.Append(']');
                break;
            case OrderedDictionary<string, object?> dict:
                sb.Append('{');
                var first = true;
                foreach (var (k, v) in dict)
                {
                    if (!first) sb.Append(", ");
                    first = false;
                    AppendStringRepr(sb, k);
                    sb.Append(": ");
                    AppendRepr(sb, v);
                }
                sb.Append('}');
                break;
            case JinjaNamespace ns:
                sb.Append("<Namespace ");
                sb.Append(Repr(ns.Values));
                sb.Append('>');
                break;
            case JinjaCallable c: sb.Append("<function ").Append(c.Name).Append('>'); break;
            default: sb.Append(value); break;
        }
    }

    private static void AppendStringRepr(StringBuilder sb, string s)
    {
        var quote = s.Contains('\'') && !s.Contains('"') ? '"' : '\'';
        sb.Append(quote);
        foreach (var c in s)
        {
            switch (c)
            {
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                default:
                    if (c == quote) sb.Append('\\').Append(c);
                    else if (c < 0x20 || c == 0x7f) sb.Append("\\x").Append(((int)c).ToString("x2", CultureInfo.InvariantCulture));
                    else sb.Append(c);
                    break;
            }
        }
        sb.Append(quote);
    }

    /// <summary>Python's repr of a float: shortest round-trip digits, fixed notation for exponents -4..15, else d.ddde±XX.</summary>
    public static string FormatFloat(double d)
    {
        if (double.IsNaN(d)) return "nan";
        if (double.IsInfinity(d)) return d > 0 ? "inf" : "-inf";
        if (d == 0) return double.IsNegative(d) ? "-0.0" : "0.0";
        // "R" gives the shortest round-trip digits; take them apart into digits and a decimal exponent.
        var r = Math.Abs(d).ToString("R", CultureInfo.InvariantCulture);
        var exponent = 0;
        var e = r.IndexOf('E');
        if (e >= 0)
        {
            exponent = int.Parse(r[(e + 1)..], CultureInfo.InvariantCulture);
            r = r[..e];
        }
        var dot = r.IndexOf('.');
        var digits = dot < 0 ? r : r.Remove(dot, 1);
        var pointPosition = (dot < 0 ? r.Length : dot) + exponent;
        var leadingZeros = digits.Length - digits.TrimStart('0').Length;
        digits = digits.Trim('0');
        pointPosition -= leadingZeros;
        var exp10 = pointPosition - 1;
        var sign = d < 0 ? "-" : "";
        if (exp10 is >= -4 and < 16)
        {
            if (pointPosition <= 0)
                return sign + "0." + new string('0', -pointPosition) + digits;
            if (pointPosition >= digits.Length)
                return sign + digits + new string('0', pointPosition - digits.Length) + ".0";
            return sign + digits[..pointPosition] + "." + digits[pointPosition..];
        }
        var mantissa = digits.Length > 1 ? digits[0] + "." + digits[1..] : digits;
        return $"{sign}{mantissa}e{(exp10 < 0 ? "-" : "+")}{Math.Abs(exp10):00}";
    }

    /// <summary>Python's json.dumps(value, ensure_ascii, indent, separators, sort_keys), as transformers' tojson filter calls it.</summary>
    public static string ToJson(object? value, int? indent = null, string? itemSeparator = null, string? keySeparator = null,
        bool sortKeys = false, bool ensureAscii = false)
    {
        var sb = new StringBuilder();
        itemSeparator ??= indent is null ? ", " : ",";
        keySeparator ??= ": ";
        WriteJson(sb, value, indent, itemSeparator, keySeparator, sortKeys, ensureAscii, 0);
        return sb.ToString();
    }

    private static void WriteJson(StringBuilder sb, object? value, int? indent, string itemSeparator, string keySeparator, bool sortKeys, bool ensureAscii, int depth)
    {
        void NewLine(int level)
        {
            if (indent is { } n)
                sb.Append('\n').Append(' ', n * level);
        }

        switch (value)
        {
            case null: sb.Append("null"); break;
            case bool b: sb.Append(b ? "true" : "false"); break;
            case long l: sb.Append(l.ToString(CultureInfo.InvariantCulture)); break;
            case double d:
                sb.Append(double.IsNaN(d) ? "NaN" : double.IsPositiveInfinity(d) ? "Infinity" : double.IsNegativeInfinity(d) ? "-Infinity" : FormatFloat(d));
                break;
            case string s: WriteJsonString(sb, s, ensureAscii); break;
            case List<object?> list:
                if (list.Count == 0)
                {
                    sb.Append("[]");
                    break;
                }
                sb.Append('[');
                for (var i = 0; i < list.Count; i++)
                {
                    if (i > 0) sb.Append(itemSeparator);
                    NewLine(depth + 1);
                    WriteJson(sb, list[i], indent, itemSeparator, keySeparator, sortKeys, ensureAscii, depth + 1);
                }
                NewLine(depth);
                sb.Append(']');
                break;
            case OrderedDictionary<string, object?> or JinjaNamespace:
            {
                var dict = value as OrderedDictionary<string, object?> ?? ((JinjaNamespace)value).Values;
                if (dict.Count == 0)
                {
                    sb.Append("{}");
                    break;
                }
                IEnumerable<KeyValuePair<string, object?>> entries = sortKeys ? dict.OrderBy(p => p.Key, StringComparer.Ordinal) : dict;
                sb.Append('{');
                var first = true;
                foreach (var (k, v) in entries)
                {
                    if (!first) sb.Append(itemSeparator);
                    first = false;
                    NewLine(depth + 1);
                    WriteJsonString(sb, k, ensureAscii);
                    sb.Append(keySeparator);
                    WriteJson(sb, v, indent, itemSeparator, keySeparator, sortKeys, ensureAscii, depth + 1);
                }
                NewLine(depth);
                sb.Append('}');
                break;
            }
            default:
                throw new InvalidOperationException($"Object of type {TypeName(value)} is not JSON serializable");
        }
    }

    private static void WriteJsonString(StringBuilder sb, string s, bool ensureAscii)
    {
        sb.Append('"');
        foreach (var c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                default:
                    if (c < 0x20 || (ensureAscii && c > 0x7e))
                        sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else
                        sb.Append(c);
                    break;
            }
        }
        sb.Append('"');
    }

    public static bool PyEquals(object? a, object? b)
    {
        switch (a, b)
        {
            case (null, null): return true;
            case (Undefined, Undefined): return true;
            case (null, _) or (_, null) or (Undefined, _) or (_, Undefined): return false;
            case (string x, string y): return x == y;
            case (string, _) or (_, string): return false;
        }
        if (IsNumber(a) && IsNumber(b))
            return a is double || b is double ? ToDouble(a) == ToDouble(b) : ToLong(a) == ToLong(b);
        if (a is List<object?> la && b is List<object?> lb)
            return (a is JinjaTuple) == (b is JinjaTuple) && la.Count == lb.Count && la.Zip(lb).All(p => PyEquals(p.First, p.Second));
        if (a is OrderedDictionary<string, object?> da && b is OrderedDictionary<string, object?> db)
            return da.Count == db.Count && da.All(p => db.TryGetValue(p.Key, out var v) && PyEquals(p.Value, v));
        return ReferenceEquals(a, b);
    }

    public static bool IsNumber(object? value) => value is long or double or bool;

    public static double ToDouble(object? value) => value switch
    {
        long l => l,
        double d => d,
        bool b => b ? 1 : 0,
        _ => throw new InvalidOperationException($"expected a number, got {TypeName(value)}"),
    };

    public static long ToLong(object? value) => value switch
    {
        long l => l,
        bool b => b ? 1 : 0,
        double d => (long)d,
        _ => throw new InvalidOperationException($"expected an integer, got {TypeName(value)}"),
    };
}
