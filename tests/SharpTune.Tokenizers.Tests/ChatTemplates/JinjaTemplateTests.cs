using System.Text.Json.Nodes;
using SharpTune.Tokenizers.ChatTemplates;

namespace SharpTune.Tokenizers.Tests.ChatTemplates;

public class JinjaTemplateTests
{
    private static string Render(string template, string variablesJson = "{}") =>
        JinjaTemplate.Parse(template).Render(JsonNode.Parse(variablesJson)!.AsObject().ToDictionary(p => p.Key, p => p.Value)).Text;

    [Theory]
    [InlineData("{{ 1 + 2 * 3 }}|{{ 7 // 2 }}|{{ -7 % 3 }}|{{ 7 / 2 }}|{{ 2 ** 10 }}", "7|3|2|3.5|1024")]
    [InlineData("{{ true }} {{ none }} {{ [1, 'a', none] }} {{ {'k': 'v'} }} {{ 1.0 }} {{ 1e-5 }}", "True None [1, 'a', None] {'k': 'v'} 1.0 1e-05")]
    [InlineData("{{ 'abc'[::-1] }} {{ [1,2,3,4][1:3] }} {{ 'hello'[-2:] }}", "cba [2, 3] lo")]
    [InlineData("{{ '  x  '.strip() }}|{{ 'a,b,c'.split(',') | join('-') }}|{{ 'Hello'.startswith(('x', 'He')) }}|{{ 'ab'.upper() }}", "x|a-b-c|True|AB")]
    [InlineData("{% for x in [1, 2, 3] if x != 2 %}{{ loop.index }}/{{ loop.length }}{{ ',' if not loop.last }}{% endfor %}", "1/2,2/2")]
    [InlineData("{% for x in [] %}a{% else %}empty{% endfor %}", "empty")]
    [InlineData("{% for x in range(5) %}{% if x == 1 %}{% continue %}{% endif %}{% if x == 3 %}{% break %}{% endif %}{{ x }}{% endfor %}", "02")]
    [InlineData("{% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{% endfor %}{{ x }}", "1")]
    [InlineData("{% set ns = namespace(x=1) %}{% for i in [1] %}{% set ns.x = 2 %}{% endfor %}{{ ns.x }}", "2")]
    [InlineData("{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('A') }} {{ greet('B', punct='?') }}", "Hi A! Hi B?")]
    [InlineData("{{ {'b': [1, 2], 'a': 'é'} | tojson }}|{{ {'a': 1} | tojson(indent=2) }}", "{\"b\": [1, 2], \"a\": \"é\"}|{\n  \"a\": 1\n}")]
    [InlineData("{{ x is defined }} {{ y | default('d') }} {{ x is string }} {{ 3 is divisibleby 3 }} {{ none is none }}", "True d True True True")]
    [InlineData("{{ [{'t': 'a'}, {'t': 'b'}] | selectattr('t', 'equalto', 'b') | map(attribute='t') | list }}", "['b']")]
    [InlineData("{% set s %}  body  {% endset %}[{{ s | trim }}]", "[body]")]
    [InlineData("{%- if true -%}\n  a  \n{%- endif -%}\n", "a")]
    [InlineData("{% if true %}\n    x\n{% endif %}\n", "    x\n")]
    [InlineData("  {% if true %}\nline\n  {% endif %}\nend", "line\nend")]
    [InlineData("{{ 'a' ~ 1 ~ none }}|{{ 'x' * 3 }}|{{ 'b' in 'abc' }}|{{ 2 not in [1] }}", "a1None|xxx|True|True")]
    [InlineData("{% raw %}{{ not rendered }}{% endraw %}", "{{ not rendered }}")]
    [InlineData("{{ 'a\\nb\\t\\'q\\'' }}", "a\nb\t'q'")]
    [InlineData("{{ d.items() | list }} {% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %} {{ d.get('z', 0) }} {{ d.a }}", "[('a', 1), ('b', 2)] a=1;b=2; 0 1")]
    public void RendersLikePythonJinja(string template, string expected) =>
        Assert.Equal(expected, Render(template, """{"x": "s", "d": {"a": 1, "b": 2}}"""));

    [Theory]
    [InlineData("hello\n{% foo %}", 2, 4, "unsupported statement 'foo'")]
    [InlineData("{{ x | nosuchfilter }}", 1, 8, "unsupported filter 'nosuchfilter'")]
    [InlineData("line1\nline2 {% if x %}", 2, 17, "'{% endif %}'")]
    [InlineData("{% for m in messages %}\n  {{ m.content.nope() }}{% endfor %}", 2, 20, "'nope' is undefined and cannot be called")]
    [InlineData("{% include 'x.j2' %}", 1, 4, "unsupported statement 'include'")]
    public void ErrorsNameTheLineAndColumn(string template, int line, int column, string message)
    {
        var error = Assert.Throws<JinjaException>(() => Render(template, """{"messages": [{"content": "c"}]}"""));
        Assert.Contains(message, error.Message);
        Assert.True(error.Line == line && error.Column >= column && error.Column <= column + 3,
            $"expected line {line}, column ~{column}; got {error.Line}:{error.Column} ({error.Message})");
    }

    [Fact]
    public void RaiseExceptionSurfacesTheTemplatesMessage()
    {
        var error = Assert.Throws<TemplateRaisedException>(() => Render("{{ raise_exception('roles must alternate') }}"));
        Assert.Equal("roles must alternate", error.Message);
    }

    [Fact]
    public void GenerationBlocksGiveTheAssistantSpans()
    {
        var template = new ChatTemplate("{% for m in messages %}<{{ m.role }}>{% if m.role == 'assistant' %}{% generation %}{{ m.content }}</s>{% endgeneration %}{% else %}{{ m.content }}{% endif %}{% endfor %}");
        var rendering = template.Render([new ChatMessage("user", "Hi"), new ChatMessage("assistant", "Hello"), new ChatMessage("user", "Q"), new ChatMessage("assistant", "A")]);
        Assert.Equal("<user>Hi<assistant>Hello</s><user>Q<assistant>A</s>", rendering.Text);
        Assert.Equal(["Hello</s>", "A</s>"], rendering.AssistantSpans.Select(s => rendering.Text[s]));
        Assert.True(template.HasGenerationBlocks());
    }

    [Fact]
    public void ContinueFinalMessageCutsAfterTheLastMessage()
    {
        var template = new ChatTemplate("{% for m in messages %}<|{{ m.role }}|>{{ m.content | trim }}<|end|>\n{% endfor %}");
        var messages = new[] { new ChatMessage("user", "Write"), new ChatMessage("assistant", "Once upon a time ") };
        Assert.Equal("<|user|>Write<|end|>\n<|assistant|>Once upon a time", template.ApplyChatTemplate(messages, new ChatTemplateOptions { ContinueFinalMessage = true }));
        Assert.Throws<ArgumentException>(() => template.ApplyChatTemplate(messages, new ChatTemplateOptions { ContinueFinalMessage = true, AddGenerationPrompt = true }));
    }

    [Fact]
    public void LoadsNamedTemplatesAndTheJinjaFileFromAFolder()
    {
        var directory = TestPaths.NewTempDirectory();
        try
        {
            File.WriteAllText(Path.Combine(directory, "tokenizer_config.json"), """
                {"bos_token": {"content": "<s>"}, "eos_token": "</s>", "add_bos_token": true,
                 "chat_template": [{"name": "default", "template": "D{{ bos_token }}"}, {"name": "tool_use", "template": "T{{ tools | length }}"}]}
                """);
            var config = TokenizerConfig.Load(directory);
            Assert.True(config.AddBosToken);
            Assert.Equal("<s>", config.SpecialTokens!.Bos);
            var template = ChatTemplate.FromConfig(config);
            Assert.Equal("D<s>", template.ApplyChatTemplate(Array.Empty<ChatMessage>()));
            Assert.Equal("T1", template.ApplyChatTemplate(Array.Empty<ChatMessage>(), new ChatTemplateOptions { Tools = [new JsonObject()] }));
            Assert.Equal("D<s>", template.ApplyChatTemplate(Array.Empty<ChatMessage>(), new ChatTemplateOptions { Tools = [new JsonObject()], TemplateName = "default" }));
            Assert.Throws<ArgumentException>(() => template.ApplyChatTemplate(Array.Empty<ChatMessage>(), new ChatTemplateOptions { TemplateName = "nope" }));

            File.WriteAllText(Path.Combine(directory, "chat_template.jinja"), "J{{ eos_token }}\n");
            Assert.Equal("J</s>", ChatTemplate.FromPretrained(directory).ApplyChatTemplate(Array.Empty<ChatMessage>()));
        }
        finally
        {
            Directory.Delete(directory, true);
        }
    }
}
